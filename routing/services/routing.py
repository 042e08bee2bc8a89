"""Routing a request: snapshot -> pipeline -> record the decision -> reserve budget.

Every call that is not a dry run is recorded exactly once, whatever its outcome
(route, queue, reject, model not found, pipeline error).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from django.utils import timezone

from routing.adapters import budget_snapshots, config_snapshot, shared_pipeline
from routing.pipeline import (
    PIPELINE_ERROR,
    RoutingContext,
    RoutingRequest,
    RoutingResult,
)
from routing.pipeline.types import BudgetSnapshot, HardLimitAction, Outcome
from routing.selectors import routing_state
from routing.services.decisions import decision_record
from routing.services.ledger import Reservation, ReservationRefused, money

logger = logging.getLogger(__name__)

#: Reservation races lost before routing as if every blocking budget were full.
MAX_RESERVATION_RETRIES = 2


@dataclass(frozen=True)
class RouteOutcome:
    """What the API returns: the payload, the decision id (None for dry runs)."""

    decision_id: uuid.UUID | None
    payload: dict[str, Any]
    result: RoutingResult | None
    duration_us: float


def _saturated(budgets: tuple[BudgetSnapshot, ...]) -> tuple[BudgetSnapshot, ...]:
    """Budgets as if blocking ones were at their limit (after lost races)."""
    return tuple(
        replace(
            b,
            reserved_usd=max(b.reserved_usd, (b.monthly_limit_usd or 0) - b.spent_usd),
        )
        if b.hard_limit_action is not HardLimitAction.WARN
        else b
        for b in budgets
    )


def _pipeline_failure(request: RoutingRequest, exc: Exception) -> dict[str, Any]:
    """A reject payload for an unexpected failure outside any reconciler."""
    logger.exception("routing pipeline failed for model %r", request.model)
    return {
        "outcome": Outcome.REJECT.value,
        "requested_model": request.model,
        "model": request.model,
        "error": {
            "type": PIPELINE_ERROR,
            "message": f"The routing pipeline failed ({type(exc).__name__}); "
            "the request was not routed. Operators: see the server log.",
            "fields": {},
            "rejections": [],
            "suggested_actions": ["Retry; if it persists, report the request id."],
        },
        "requirements": {},
        "constraints": {},
        "matched_policies": [],
        "fallback_used": False,
        "models_tried": [],
        "annotations": {},
        "trace": [],
        "warnings": [],
        "pipeline_duration_us": 0.0,
    }


def _route_once(
    request: RoutingRequest,
    budgets: tuple[BudgetSnapshot, ...],
    versions: tuple[int, int],
) -> tuple[RoutingResult | None, dict[str, Any], int]:
    config = config_snapshot(versions)
    context = RoutingContext(
        config=config, budgets=budgets, today=timezone.now().date()
    )
    try:
        result = shared_pipeline().route(request, context)
    except Exception as exc:  # noqa: BLE001 - recorded as a pipeline_error reject
        return None, _pipeline_failure(request, exc), config.version
    payload = result.to_dict()
    if "error" in payload:  # the API's error shape always names offending fields
        error = payload["error"]
        payload["error"] = {
            "type": error["type"],
            "message": error["message"],
            "fields": {},
            **error,
        }
    return result, payload, config.version


def route_request(
    *, request: RoutingRequest, request_id: str, client: str, dry_run: bool = False
) -> RouteOutcome:
    """Decide where ``request`` runs; record it and reserve its estimate unless dry."""
    started = time.perf_counter()
    state = routing_state()
    rows = state.budgets
    budgets = budget_snapshots(rows)
    for attempt in range(MAX_RESERVATION_RETRIES + 1):
        if attempt == MAX_RESERVATION_RETRIES:
            budgets = _saturated(budgets)
        result, payload, version = _route_once(
            request, budgets, (state.version, state.state_version)
        )
        if dry_run:
            return RouteOutcome(None, payload, result, _elapsed(started))
        decision_id = uuid.uuid4()
        cost = result.estimated_cost_usd if result is not None else None
        reservation = None
        if result is not None and result.outcome is Outcome.ROUTE and cost and rows:
            reservation = Reservation(amount=money(cost), budgets=rows)
        try:
            decision_record(
                decision_id=decision_id,
                payload=payload,
                request_id=request_id,
                client=client,
                config_version=version,
                created_at=timezone.now(),
                reservation=reservation,
            )
        except ReservationRefused as refused:
            logger.info("reservation refused on %s; routing again", refused.budget)
            state = routing_state()
            rows = state.budgets
            budgets = budget_snapshots(rows)
            continue
        return RouteOutcome(decision_id, payload, result, _elapsed(started))
    raise AssertionError(
        "unreachable: the last attempt never reserves on a full budget"
    )


def _elapsed(started: float) -> float:
    return (time.perf_counter() - started) * 1_000_000
