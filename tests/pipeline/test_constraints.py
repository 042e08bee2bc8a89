"""Request and policy constraints combine and never relax."""

from __future__ import annotations

from routing.pipeline.analysis import combine_constraints
from routing.pipeline.types import PolicySnapshot, TierMode

from .fleet import request


def test_privacy_keeps_every_stated_constraint_with_its_sources() -> None:
    policy = PolicySnapshot("eu", "*", privacy="zone:eu-private")
    combined = combine_constraints(
        request(privacy="restricted", source="header"), [policy]
    )
    assert combined.privacy_label == "restricted+zone:eu-private"
    assert combined.privacy_sources == ("header", "policy:eu")


def test_an_unrestricted_request_cannot_relax_a_restricted_policy() -> None:
    policy = PolicySnapshot("confidential", "*", privacy="restricted")
    combined = combine_constraints(request(privacy="unrestricted"), [policy])
    assert combined.privacy_label == "restricted"
    assert combined.to_dict()["privacy"] == {
        "value": "restricted",
        "sources": ["policy:confidential"],
    }


def test_the_highest_stated_tier_applies() -> None:
    policy = PolicySnapshot("p", "*", min_tier=3)
    assert combine_constraints(request(min_tier=2), [policy]).min_tier == 3
    assert combine_constraints(request(min_tier=4), [policy]).min_tier == 4


def test_the_lowest_stated_cost_cap_applies() -> None:
    policy = PolicySnapshot("p", "*", max_cost_per_request_usd=0.5)
    combined = combine_constraints(request(max_cost_usd=0.2), [policy])
    assert combined.max_cost_usd == 0.2
    assert combined.max_cost_sources == ("body",)
    assert combine_constraints(request(max_cost_usd=2.0), [policy]).max_cost_usd == 0.5


def test_tier_mode_is_strict_unless_the_request_asks_for_flexible() -> None:
    assert combine_constraints(request(), []).tier_mode is TierMode.STRICT
    flexible = combine_constraints(request(tier_mode=TierMode.FLEXIBLE), [])
    assert flexible.tier_mode is TierMode.FLEXIBLE


def test_a_policy_without_fallback_keeps_tier_mode_strict() -> None:
    policy = PolicySnapshot("no-downgrade", "*", fallback_allowed=False)
    combined = combine_constraints(request(tier_mode=TierMode.FLEXIBLE), [policy])
    assert combined.tier_mode is TierMode.STRICT
    assert combined.tier_mode_sources == ("policy:no-downgrade",)


def test_an_unparseable_policy_privacy_fails_closed_as_restricted() -> None:
    policy = PolicySnapshot("broken", "*", privacy="top-secret")
    assert combine_constraints(request(), [policy]).privacy_label == "restricted"
