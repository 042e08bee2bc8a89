"""Explorer use cases: re-running a recorded decision, simulating one, editing a backend.

The prompt is never stored, so a re-run synthesises a body with the same derived
facts (token estimates, vision, tools, json mode) and restates the constraints
the request itself made (those whose source is the body or a header; policy
constraints are re-derived from today's policies). Re-runs and simulations are
dry runs: they go through the real pipeline and record nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from routing.models import Backend, PrivacyZone, RoutingDecision
from routing.pipeline import RoutingRequest, RoutingResult
from routing.pipeline.rules import parse_privacy
from routing.pipeline.types import TierMode
from routing.replay import replay_body
from routing.services.backends import backend_save
from routing.services.config import config_version_current
from routing.services.decision_templates import decision_view
from routing.services.routing import route_request

#: Where a constraint is stated by the request itself (not by a policy).
REQUEST_SOURCES = frozenset({"body", "header", "body+header", "request"})


@dataclass(frozen=True)
class DryRun:
    """A decision computed against today's configuration, not recorded."""

    result: RoutingResult
    config_version: int
    request: RoutingRequest


#: An OpenAI-style body whose derived facts are the given ones (no real text):
#: the one a backtest's replay builds too.
synthetic_body = replay_body


def _from_request(constraint: dict[str, Any] | None) -> bool:
    sources = (constraint or {}).get("sources") or []
    return any(source in REQUEST_SOURCES for source in sources)


def request_from_decision(decision: RoutingDecision) -> RoutingRequest:
    """The routing request a recorded decision answered, as far as it was recorded.

    A request constraint weaker than a policy's (a lower tier, a higher cost cap)
    was not recorded, so it cannot be restated.
    """
    view = decision_view(decision)  # either stored form
    requirements = view["requirements"]
    constraints = view["constraints"]
    body = synthetic_body(
        input_tokens=int(requirements.get("estimated_input_tokens") or 0),
        output_tokens=int(requirements.get("estimated_output_tokens") or 0),
        vision=bool(requirements.get("vision")),
        tools=bool(requirements.get("tools")),
        json_mode=bool(requirements.get("json_mode")),
    )
    sources: dict[str, str] = {}
    privacy = None
    privacy_entry = constraints.get("privacy")
    if _from_request(privacy_entry):
        # The request's own constraint is always stated first.
        privacy = parse_privacy(str(privacy_entry["value"]).split("+")[0])
        sources["privacy"] = privacy_entry["sources"][0]
    min_tier = None
    tier_entry = constraints.get("min_tier")
    if _from_request(tier_entry) and tier_entry and tier_entry.get("value"):
        min_tier = int(tier_entry["value"])
        sources["min_tier"] = "request"
    tier_mode = None
    mode_entry = constraints.get("tier_mode") or {}
    mode_sources = mode_entry.get("sources") or []
    if _from_request(mode_entry):
        tier_mode = TierMode(mode_entry["value"])
        sources["tier_mode"] = "request"
    elif any(str(s).startswith("policy:") for s in mode_sources):
        tier_mode = TierMode.FLEXIBLE  # asked for, then refused by a policy
        sources["tier_mode"] = "request"
    max_cost = None
    cost_entry = constraints.get("max_cost_usd")
    if _from_request(cost_entry) and cost_entry and cost_entry.get("value"):
        max_cost = float(cost_entry["value"])
        sources["max_cost_usd"] = "request"
    return RoutingRequest(
        model=decision.requested_model,
        body=body,
        privacy=privacy,
        min_tier=min_tier,
        tier_mode=tier_mode,
        max_cost_usd=max_cost,
        sources=sources,
    )


def _dry_run(
    request: RoutingRequest, request_id: str, client: str = "explorer"
) -> DryRun:
    outcome = route_request(
        request=request, request_id=request_id, client=client, dry_run=True
    )
    return DryRun(
        result=outcome.result,
        config_version=config_version_current(),
        request=request,
    )


def decision_rerun(*, decision: RoutingDecision) -> DryRun:
    """Route the recorded request again against today's configuration (dry run),
    as its client (budgets scoped to clients apply as they would to it)."""
    return _dry_run(
        request_from_decision(decision),
        decision.request_id,
        decision.client or "explorer",
    )


def decision_simulate(
    *,
    model: str,
    input_tokens: int,
    output_tokens: int,
    vision: bool = False,
    tools: bool = False,
    json_mode: bool = False,
    privacy: str = "",
    min_tier: int | None = None,
    tier_mode: str = "",
    max_cost_usd: float | None = None,
) -> DryRun:
    """Route a described request through the real pipeline without recording it."""
    sources = {}
    for name, value in (
        ("privacy", privacy),
        ("min_tier", min_tier),
        ("tier_mode", tier_mode),
        ("max_cost_usd", max_cost_usd),
    ):
        if value not in ("", None):
            sources[name] = "body"
    request = RoutingRequest(
        model=model,
        body=synthetic_body(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            vision=vision,
            tools=tools,
            json_mode=json_mode,
        ),
        privacy=parse_privacy(privacy) if privacy else None,
        min_tier=min_tier,
        tier_mode=TierMode(tier_mode) if tier_mode else None,
        max_cost_usd=max_cost_usd,
        sources=sources,
    )
    return _dry_run(request, f"simulate-{uuid.uuid4().hex[:12]}")


@transaction.atomic
def backend_settings_save(
    *,
    backend: Backend,
    privacy_zone: PrivacyZone | None,
    capability_tier: int,
    priority: int,
    enabled: bool,
    actor: str,
) -> Backend:
    """Change a backend's zone, tier, priority and enabled flag (audited, versioned).

    Saved through ``backend_save``, so it schedules the same follow-up work as
    the API and the admin (a probe when a backend is enabled). Raises ``ValidationError`` with field messages when a value is refused.
    """
    backend.privacy_zone = privacy_zone
    backend.capability_tier = capability_tier
    backend.priority = priority
    backend.enabled = enabled
    return backend_save(backend=backend, models=None, actor=actor)
