"""Routing a request: state -> pipeline -> record the decision -> reserve budget.

Every call that is not a dry run is recorded exactly once, whatever its outcome
(route, queue, reject, model not found, pipeline error).

The state a decision needs (config and probed-state versions, enabled budgets)
costs a round trip to read. On PostgreSQL a process first routes on the state
it read last and writes the decision with a guard: the write happens only if
the versions are unchanged and every budget is still far enough below its soft
limit that budgets cannot have changed the decision. Otherwise (and always for
dry runs, on SQLite, near a soft limit, for fallback-routed calls, with extra
reconcilers or the round-robin strategy) it reads the state, then routes.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from routing.adapters import budget_snapshots, config_snapshot, shared_pipeline
from routing.pipeline import (
    RoutingContext,
    RoutingRequest,
    RoutingResult,
    failure_result,
)
from routing.pipeline.budgets import budgets_leave_room
from routing.pipeline.types import BudgetSnapshot, HardLimitAction, Outcome
from routing.selectors import RoutingState, routing_state
from routing.services.alerts import budget_alerts_check, budget_crosses_threshold
from routing.services.decision_sql import StateGuard
from routing.services.decisions import StaleRoutingState, decision_record
from routing.services.ledger import Reservation, ReservationRefused, money

logger = logging.getLogger(__name__)

#: Reservation races lost before routing as if every blocking budget were full.
MAX_RESERVATION_RETRIES = 2


@dataclass(frozen=True)
class RouteOutcome:
    """The decision (as recorded), its id (None for dry runs) and how long the
    call took; the caller that answers turns ``result`` into JSON."""

    decision_id: uuid.UUID | None
    result: RoutingResult
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


def _route_once(
    request: RoutingRequest,
    budgets: tuple[BudgetSnapshot, ...],
    versions: tuple[int, int],
    in_flight: Mapping[str, int] | None = None,
) -> tuple[RoutingResult, bool, int]:
    """(result, whether the pipeline failed outside any reconciler, config version)."""
    config = config_snapshot(versions)
    context = RoutingContext(config=config, budgets=budgets, in_flight=in_flight)
    try:
        result = shared_pipeline().route(request, context)
    except Exception as exc:  # noqa: BLE001 - recorded as a pipeline_error reject
        logger.exception("routing pipeline failed for model %r", request.model)
        return failure_result(request, type(exc).__name__), True, config.version
    return result, False, config.version


@dataclass(frozen=True)
class _KnownState:
    """The routing state this process read last, with its budget snapshots."""

    state: RoutingState
    budgets: tuple[BudgetSnapshot, ...]
    database: str


_known: _KnownState | None = None


def routing_state_forget() -> None:
    """Forget the state read last (tests; the next call reads it again)."""
    global _known
    _known = None


def _read_state() -> _KnownState:
    """Read the routing state (one round trip) and remember it."""
    global _known
    state = routing_state()
    known = _KnownState(
        state, budget_snapshots(state.budgets), connection.settings_dict["NAME"]
    )
    _known = known
    return known


def _remembered_state() -> _KnownState | None:
    """The last state read, if a decision may be routed on it (see module doc)."""
    known = _known
    if (
        known is None
        or connection.vendor != "postgresql"
        or known.database != connection.settings_dict["NAME"]
        # Extra reconcilers may read budgets in ways the guard cannot vouch for.
        or settings.NEXUS_EXTRA_RECONCILERS
        # A call routed again after a refused guard would turn the rotation twice.
        or settings.NEXUS_SELECTION_STRATEGY == "round_robin"
        or not budgets_leave_room(known.budgets, 0.0)
    ):
        return None
    return known


def route_request(
    *,
    request: RoutingRequest,
    request_id: str,
    client: str,
    api_key_id: int | None = None,
    dry_run: bool = False,
    in_flight: Mapping[str, int] | None = None,
) -> RouteOutcome:
    """Decide where ``request`` runs; record it and reserve its estimate unless dry.

    ``api_key_id`` is the key that asked (None for a login session or an
    internal call): only that key, or an admin key, may report the usage.
    ``in_flight`` is the live in-flight count per backend (the proxy's), for
    the load scorer.
    """
    started = time.perf_counter()
    client_key = (client, api_key_id)
    if request.client != client:
        request = replace(request, client=client)
    known = None if dry_run else _remembered_state()
    if known is not None:
        outcome = _route_on_remembered_state(
            known, request, request_id, client_key, in_flight
        )
        if outcome is not None:
            return replace(outcome, duration_us=_elapsed(started))
    known = _read_state()
    state, budgets = known.state, known.budgets
    for attempt in range(MAX_RESERVATION_RETRIES + 1):
        if attempt == MAX_RESERVATION_RETRIES:
            budgets = _saturated(budgets)
        result, _, version = _route_once(
            request, budgets, (state.version, state.state_version), in_flight
        )
        if dry_run:
            return RouteOutcome(None, result, _elapsed(started))
        try:
            recorded = _record(result, version, state, request_id, client_key, request)
        except ReservationRefused as refused:
            logger.info("reservation refused on %s; routing again", refused.budget)
            known = _read_state()
            state, budgets = known.state, known.budgets
            continue
        return replace(recorded, duration_us=_elapsed(started))
    raise AssertionError(
        "unreachable: the last attempt never reserves on a full budget"
    )


def _route_on_remembered_state(
    known: _KnownState,
    request: RoutingRequest,
    request_id: str,
    client_key: tuple[str, int | None],
    in_flight: Mapping[str, int] | None = None,
) -> RouteOutcome | None:
    """Route and record on ``known``; None (nothing written) if it may not hold."""
    state = known.state
    result, failed, version = _route_once(
        request, known.budgets, (state.version, state.state_version), in_flight
    )
    if failed or result.fallback_used:
        return None
    estimates = result.annotations.get("estimated_cost_usd", {}).values()
    top = max(estimates, default=0.0)
    if not all(math.isfinite(cost) for cost in estimates) or not budgets_leave_room(
        known.budgets, top
    ):
        return None
    guard = StateGuard(
        config_version=state.version,
        state_version=state.state_version,
        budgets=tuple(state.budgets),
        headroom=Decimal(repr(top)),
    )
    try:
        return _record(result, version, state, request_id, client_key, request, guard)
    except (StaleRoutingState, ReservationRefused):
        return None


def _record(
    result: RoutingResult,
    version: int,
    state: RoutingState,
    request_id: str,
    client_key: tuple[str, int | None],
    request: RoutingRequest,
    guard: StateGuard | None = None,
) -> RouteOutcome:
    """Record the decision under a new id (duration left for the caller).

    ``client_key`` is the client name and the id of the key that asked. The
    outcome carries the result as recorded (its budget label may be worse once
    the reservation is counted).
    """
    decision_id = uuid.uuid4()
    reservation = _reservation(result, state, client_key[0])
    recorded = decision_record(
        decision_id=decision_id,
        result=result,
        request_id=request_id,
        client=client_key[0],
        api_key_id=client_key[1],
        config_version=version,
        created_at=timezone.now(),
        reservation=reservation,
        guard=guard,
        request=request,
    )
    if reservation is not None:
        crossed = [
            b.pk
            for b in reservation.budgets
            if budget_crosses_threshold(b, reservation.amount)
        ]
        if crossed:  # rare: the periodic check would find them a beat later
            budget_alerts_check(budget_ids=crossed)
    return RouteOutcome(decision_id, recorded, 0.0)


def _reservation(
    result: RoutingResult, state: RoutingState, client: str
) -> Reservation | None:
    """What a decision reserves: a priced route's estimate on every budget with
    a limit that governs the chosen backend."""
    backend = result.backend
    cost = result.estimated_cost_usd
    if result.outcome is not Outcome.ROUTE or backend is None or not cost:
        return None
    budgets = [
        b
        for b in state.budgets
        if b.monthly_limit_usd is not None
        and b.governs(
            client=client,
            model=result.model,
            backend=backend.name,
            zone=backend.privacy_zone or "",
        )
    ]
    return Reservation(amount=money(cost), budgets=budgets) if budgets else None


def _elapsed(started: float) -> float:
    return (time.perf_counter() - started) * 1_000_000
