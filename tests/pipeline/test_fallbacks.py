"""Fallback chains never escape a constraint and record what they tried."""

from __future__ import annotations

from routing.pipeline import NO_VIABLE_BACKEND
from routing.pipeline.types import Outcome, PolicySnapshot

from .fleet import backend, cloud, config, local, offer, request, route

MISTRAL = (offer("mistral"),)


def test_a_rejected_model_falls_back_to_the_next_model_in_its_chain() -> None:
    cfg = config(
        local("l-off", enabled=False),
        local("m", models=MISTRAL),
        fallbacks={"llama3": ("mistral",)},
    )
    result = route(cfg, request())
    assert result.outcome is Outcome.ROUTE
    assert result.fallback_used
    assert result.models_tried == ("llama3", "mistral")
    assert (result.requested_model, result.model) == ("llama3", "mistral")
    assert {e.model for e in result.trace} == {"llama3", "mistral"}
    assert any("fallback" in w for w in result.warnings)


def test_a_fallback_never_escapes_the_request_privacy_constraint() -> None:
    cfg = config(
        cloud("c", model="mistral"),
        fallbacks={"llama3": ("mistral",)},
    )
    result = route(cfg, request(privacy="restricted"))
    assert result.outcome is Outcome.REJECT
    assert result.models_tried == ("llama3", "mistral")
    assert result.error_type == NO_VIABLE_BACKEND


def test_a_fallback_keeps_the_primary_model_policy_constraints() -> None:
    cfg = config(
        cloud("c-llama"),
        cloud("c-mistral", model="mistral"),
        local("l-mistral", models=MISTRAL, capability_tier=1),
        fallbacks={"llama3": ("mistral",)},
        policies=(
            PolicySnapshot("llama-private", "llama*", privacy="restricted", min_tier=2),
        ),
    )
    result = route(cfg, request())
    # Primary: c-llama is cloud. Fallback: c-mistral is cloud, l-mistral tier 1.
    assert result.outcome is Outcome.REJECT
    assert result.matched_policies == ("llama-private",)
    assert {r.model for r in result.rejections} == {"llama3", "mistral"}


def test_the_fallback_model_own_policy_also_applies() -> None:
    cfg = config(
        local("l-off", enabled=False),
        cloud("c-mistral", model="mistral"),
        fallbacks={"llama3": ("mistral",)},
        policies=(PolicySnapshot("mistral-private", "mistral", privacy="restricted"),),
    )
    result = route(cfg, request())
    assert result.outcome is Outcome.REJECT
    assert "mistral-private" in result.to_dict()["matched_policies"]


def test_a_policy_without_fallback_disables_the_chain() -> None:
    cfg = config(
        local("l-off", enabled=False),
        local("m", models=MISTRAL),
        fallbacks={"llama3": ("mistral",)},
        policies=(PolicySnapshot("pinned", "llama3", fallback_allowed=False),),
    )
    result = route(cfg, request())
    assert result.outcome is Outcome.REJECT
    assert result.models_tried == ("llama3",)


def test_each_fallback_is_tried_in_order_until_one_routes() -> None:
    cfg = config(
        local("l-off", enabled=False),
        backend("p-off", models=(offer("phi"),), enabled=False),
        local("m", models=MISTRAL),
        fallbacks={"llama3": ("phi", "mistral", "never")},
    )
    result = route(cfg, request())
    assert result.models_tried == ("llama3", "phi", "mistral")
    assert result.backend_name == "m"


def test_when_every_attempt_fails_the_message_covers_them_all() -> None:
    cfg = config(
        local("l-off", enabled=False),
        backend("m-off", models=MISTRAL, enabled=False),
        fallbacks={"llama3": ("mistral",)},
    )
    result = route(cfg, request())
    message = result.error_message or ""
    assert "[llama3]" in message and "[mistral]" in message
    assert {r.backend for r in result.rejections} == {"l-off", "m-off"}


def test_an_unknown_primary_model_with_a_chain_uses_the_chain() -> None:
    cfg = config(local("m", models=MISTRAL), fallbacks={"retired": ("mistral",)})
    result = route(cfg, request("retired"))
    assert result.backend_name == "m"
    assert result.models_tried == ("retired", "mistral")
