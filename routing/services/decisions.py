"""Recording a routing decision: its row, one row per excluding reconciler, and
(for a priced route) its budget reservation, all or nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from routing.decision_storage import encode
from routing.models import DecisionExclusion, RoutingDecision
from routing.pipeline import RoutingRequest, RoutingResult
from routing.replay import stated_constraints
from routing.services.decision_sql import StateGuard, decision_write, status_rank_of
from routing.services.decision_templates import decision_template_apply
from routing.services.ledger import (
    STATUS_RANKS,
    Reservation,
    ReservationRefused,
    budget_reservation_undo,
    budget_reserve,
)

#: The ``RoutingResult.to_dict()`` keys stored in a column of their own; the
#: others are stored in ``details``.
COLUMNS = frozenset(
    {
        "outcome",
        "requested_model",
        "model",
        "score",
        "reason",
        "estimated_cost_usd",
        "fallback_used",
        "pipeline_duration_us",
        "requirements",
        "constraints",
        "annotations",
        "trace",
        "warnings",
    }
)


class StaleRoutingState(Exception):
    """The state a decision was routed on changed before it could be written."""


def _exclusion_counts(result: RoutingResult) -> Counter[str]:
    counts: Counter[str] = Counter()
    for entry in result.trace:
        if entry.excluded:
            counts[entry.reconciler] += len(entry.excluded)
    return counts


def exclusion_rows(
    *, decision_id: uuid.UUID, counts: Mapping[str, int], created_at: datetime
) -> list[DecisionExclusion]:
    """One row per reconciler that excluded backends in a decision (unsaved)."""
    return [
        DecisionExclusion(
            decision_id=decision_id,
            reconciler=reconciler,
            excluded_count=count,
            created_at=created_at,
        )
        for reconciler, count in counts.items()
    ]


def decision_record(
    *,
    decision_id: uuid.UUID,
    result: RoutingResult,
    request_id: str,
    client: str,
    config_version: int,
    created_at: datetime,
    api_key_id: int | None = None,
    reservation: Reservation | None = None,
    guard: StateGuard | None = None,
    request: RoutingRequest | None = None,
) -> RoutingResult:
    """Store ``result`` (never prompt text); return it as stored. ``request``:
    the request routed, whose own constraints are recorded for replays.

    With a ``reservation``, its amount is reserved on each of its budgets in
    the same atomic write; if a blocking budget has no room left, nothing is
    written and ``ReservationRefused`` names it. With a ``guard`` (PostgreSQL
    only), nothing is written and ``StaleRoutingState`` is raised unless the
    state the decision was routed on still holds. ``api_key_id`` names the
    key that routed it (None for a login session). On PostgreSQL the whole
    write is one statement (one round trip); elsewhere one transaction.

    A reservation may take a budget to its soft or hard limit after the
    pipeline read the figures (another call reserved in between, or this
    call's own estimate): the recorded ``budget_status`` label, and the one in
    the returned result, is then the budgets' status once the reservation is
    counted, on the same figures the reservation was checked against.
    """
    known = {
        "id": decision_id,
        "request_id": request_id,
        "client": client,
        "api_key_id": api_key_id,
        "config_version": config_version,
        "created_at": created_at,
    }
    counts = _exclusion_counts(result)
    if connection.vendor == "postgresql":
        # The statement itself relabels the stored annotations.
        columns = stored_columns(result, request=request, **known)
        rank = _write(columns, counts, reservation, guard)
        return _relabel(result, rank)
    if guard is not None:
        raise ValueError("a state guard needs PostgreSQL's one-statement write")
    with transaction.atomic():
        # Reserve first: the row is saved with the label the figures give.
        if reservation is not None:
            rank = budget_reserve(decision_id=decision_id, reservation=reservation)
            result = _relabel(result, rank)
        RoutingDecision(**stored_columns(result, request=request, **known)).save(
            force_insert=True
        )
        DecisionExclusion.objects.bulk_create(
            exclusion_rows(
                decision_id=decision_id, counts=counts, created_at=created_at
            )
        )
    return result


def decision_rows(
    *,
    decision_id: uuid.UUID,
    result: RoutingResult,
    created_at: datetime,
    request: RoutingRequest | None = None,
    **known: Any,
) -> tuple[RoutingDecision, list[DecisionExclusion]]:
    """A decision's unsaved rows with the columns ``decision_record`` writes, for
    writers in bulk (``decisions_insert``); ``known`` are the other columns
    (request_id, client, config_version, sample...). Nothing is reserved."""
    columns = stored_columns(
        result, request=request, id=decision_id, created_at=created_at, **known
    )
    exclusions = exclusion_rows(
        decision_id=decision_id,
        counts=_exclusion_counts(result),
        created_at=created_at,
    )
    return RoutingDecision(**columns), exclusions


@transaction.atomic
def decisions_insert(
    *, decisions: list[RoutingDecision], exclusions: list[DecisionExclusion]
) -> None:
    """Insert rows made by ``decision_rows`` in one transaction (bulk path)."""
    RoutingDecision.objects.bulk_create(decisions)
    DecisionExclusion.objects.bulk_create(exclusions)


def _write(
    columns: dict[str, Any],
    counts: Counter[str],
    reservation: Reservation | None,
    guard: StateGuard | None,
) -> int | None:
    """The one statement; returns the reserved budgets' worst status rank."""
    result = decision_write(columns, counts, reservation, guard)
    if not result.guard_held:
        raise StaleRoutingState()
    if reservation is not None:
        missing = [
            b.name
            for b in reservation.budgets
            if b.pk not in result.reserved_budget_ids
        ]
        if missing:
            # The budgets with room took the amount (nothing else was written):
            # give it back. Until then they look fuller than they are, which
            # can only refuse, never overspend; should this process die first,
            # the periodic reconciliation recomputes them from the ledger.
            budget_reservation_undo(
                budget_ids=result.reserved_budget_ids, amount=reservation.amount
            )
            raise ReservationRefused(missing[0])
    return result.status_rank


def _relabel(result: RoutingResult, rank: int | None) -> RoutingResult:
    """``result`` with the worse of its budget label and ``rank``'s."""
    if rank is None or rank <= status_rank_of(result.annotations):
        return result
    annotations = {**result.annotations, "budget_status": STATUS_RANKS[rank].value}
    return replace(result, annotations=annotations)


def stored_columns(
    result: RoutingResult, *, request: RoutingRequest | None = None, **known: Any
) -> dict[str, Any]:
    """``decision_columns`` in the compact stored form (``routing.decision_storage``;
    a delta against a template from the second decision of a model and month
    on, ``decision_templates``), with the constraints ``request`` itself
    stated when given (for a replay)."""
    stated = None if request is None else stated_constraints(request)
    return decision_template_apply(
        encode(decision_columns(result, **known), stated=stated)
    )


def decision_columns(result: RoutingResult, **known: Any) -> dict[str, Any]:
    """The decision row's column values (by attribute name) for ``result``.

    Each JSON column holds the same piece as ``result.to_dict()``; ``details``
    holds that dict's other keys, in its order (see ``COLUMNS``).
    """
    backend = result.backend_json()
    cost = result.estimated_cost_usd if backend is not None else None
    # The answer's other keys; its costly pieces are built once and shared.
    details = {k: v for k, v in result.to_dict().items() if k not in COLUMNS}
    return {
        "sample": False,
        **known,
        "outcome": result.outcome.value,
        "error_type": result.error_type or "",
        "requested_model": result.requested_model[:200],
        "model": result.model[:200],
        "backend_name": backend["name"] if backend is not None else "",
        "score": result.score if backend is not None else None,
        "estimated_cost_usd": Decimal(str(cost)) if cost is not None else None,
        "reason": (result.reason if backend is not None else None) or "",
        "fallback_used": result.fallback_used,
        "pipeline_duration_us": round(result.duration_us, 1),
        "requirements": result.requirements_json(),
        "constraints": result.constraints_json(),
        "annotations": result.annotations_json(),
        "trace": result.trace_json(),
        "warnings": list(result.warnings),
        "attempts": [],
        "details": details,
    }
