"""Recording a routing decision: its row, one row per excluding reconciler, and
(for a priced route) its budget reservation, all or nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from routing.models import DecisionExclusion, RoutingDecision
from routing.services.decision_sql import StateGuard, decision_write, status_rank_of
from routing.services.ledger import (
    STATUS_RANKS,
    Reservation,
    ReservationRefused,
    budget_reserve,
)

COLUMNS = {
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


class StaleRoutingState(Exception):
    """The state a decision was routed on changed before it could be written."""


def _exclusion_counts(trace: list[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for entry in trace:
        if entry.get("excluded"):
            counts[entry["reconciler"]] += len(entry["excluded"])
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
    payload: dict[str, Any],
    request_id: str,
    client: str,
    config_version: int,
    created_at: datetime,
    api_key_id: int | None = None,
    reservation: Reservation | None = None,
    guard: StateGuard | None = None,
) -> None:
    """Store ``payload`` (a ``RoutingResult.to_dict()``, never prompt text).

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
    ``payload``, is then the budgets' status once the reservation is counted,
    on the same figures the reservation was checked against.
    """
    columns = _columns(
        payload,
        id=decision_id,
        request_id=request_id,
        client=client,
        api_key_id=api_key_id,
        config_version=config_version,
        created_at=created_at,
    )
    counts = _exclusion_counts(payload.get("trace", []))
    if connection.vendor == "postgresql":
        if reservation is not None and len(reservation.budgets) > 1:
            # A refusal by one budget must undo the others' reservations.
            with transaction.atomic():
                rank = _write(columns, counts, reservation, guard)
        else:
            rank = _write(columns, counts, reservation, guard)
        _relabel(payload, rank)
        return
    if guard is not None:
        raise ValueError("a state guard needs PostgreSQL's one-statement write")
    with transaction.atomic():
        # Reserve first: the row is saved with the label the figures give.
        if reservation is not None:
            rank = budget_reserve(decision_id=decision_id, reservation=reservation)
            if _relabel(payload, rank):
                columns["annotations"] = payload["annotations"]
        RoutingDecision(**columns).save(force_insert=True)
        DecisionExclusion.objects.bulk_create(
            exclusion_rows(
                decision_id=decision_id, counts=counts, created_at=created_at
            )
        )


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
            raise ReservationRefused(missing[0])
    return result.status_rank


def _relabel(payload: dict[str, Any], rank: int | None) -> bool:
    """Give ``payload`` the worse of its budget label and ``rank``'s; changed?"""
    annotations = payload.get("annotations") or {}
    if rank is None or rank <= status_rank_of(annotations):
        return False
    payload["annotations"] = {
        **annotations,
        "budget_status": STATUS_RANKS[rank].value,
    }
    return True


def _columns(payload: dict[str, Any], **known: Any) -> dict[str, Any]:
    """The decision row's column values (by attribute name) from ``payload``."""
    error = payload.get("error") or {}
    backend = payload.get("backend") or {}
    cost = payload.get("estimated_cost_usd")
    return {
        **known,
        "outcome": payload["outcome"],
        "error_type": error.get("type") or "",
        "requested_model": payload["requested_model"][:200],
        "model": payload["model"][:200],
        "backend_name": backend.get("name", ""),
        "score": payload.get("score"),
        "estimated_cost_usd": Decimal(str(cost)) if cost is not None else None,
        "reason": payload.get("reason") or "",
        "fallback_used": payload.get("fallback_used", False),
        "pipeline_duration_us": payload.get("pipeline_duration_us", 0.0),
        "requirements": payload.get("requirements", {}),
        "constraints": payload.get("constraints", {}),
        "annotations": payload.get("annotations", {}),
        "trace": payload.get("trace", []),
        "warnings": payload.get("warnings", []),
        "attempts": [],
        "details": {k: v for k, v in payload.items() if k not in COLUMNS},
    }
