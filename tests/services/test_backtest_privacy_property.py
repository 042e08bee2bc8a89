"""Under any draft, no replayed request reaches a backend outside its
restricted or zone constraint (``privacy_violations`` stays 0)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.services.drafts import DraftChange
from tests.services.test_backtests import ask, draft, record_traffic, run

pytestmark = pytest.mark.django_db

BACKENDS = ("local-gpu", "cloud-llama", "cloud-gpt")
ZONES = ("local", "cloud")
PRIVACY = ("restricted", "unrestricted", "zone:local", "zone:cloud")

backend_changes = st.builds(
    lambda name, fields: DraftChange("backends", "update", name, fields),
    st.sampled_from(BACKENDS),
    st.fixed_dictionaries(
        {},
        optional={
            "privacy_zone": st.sampled_from(ZONES),
            "enabled": st.booleans(),
            "capability_tier": st.integers(1, 5),
            "priority": st.integers(0, 100),
        },
    ).filter(bool),
)
zone_changes = st.builds(
    lambda private: DraftChange("zones", "update", "cloud", {"private": private}),
    st.booleans(),
)
policy_changes = st.builds(
    lambda pattern, privacy: DraftChange(
        "policies", "create", "p", {"model_pattern": pattern, "privacy": privacy}
    ),
    st.sampled_from(("llama*", "gpt*", "*")),
    st.sampled_from(PRIVACY),
)
drafts = st.tuples(
    st.lists(backend_changes, max_size=3),
    st.lists(zone_changes, max_size=1),
    st.lists(policy_changes, max_size=1),
).map(lambda parts: [*parts[0], *parts[1], *parts[2]])


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(changes=drafts)
def test_no_draft_makes_a_replay_reach_a_backend_outside_its_privacy(
    fleet: Any, django_settings: Any, changes: list[DraftChange]
) -> None:
    recorded = _record_once(django_settings)
    summary = run(draft(*changes) if changes else None).summary
    assert summary["total"] == recorded
    assert summary["privacy_violations"] == 0


def _record_once(django_settings: Any) -> int:
    from routing.models import RoutingDecision

    count = RoutingDecision.objects.count()
    if count:
        return count
    record_traffic(django_settings, ("smart", "round_robin"))
    for zone in ZONES:
        ask("llama3.1:8b", privacy=f"zone:{zone}")
        ask("gpt-4o", privacy=f"zone:{zone}")
    return RoutingDecision.objects.count()


@pytest.fixture
def django_settings(settings: Any) -> Any:
    return settings
