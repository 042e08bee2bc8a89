"""Recording a routing decision: its row, one row per excluding reconciler, and
(for a priced route) its budget reservation, all or nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import connection, transaction

from routing.json_text import json_text
from routing.models import (
    Budget,
    DecisionExclusion,
    LedgerEntry,
    LedgerKind,
    RoutingDecision,
)
from routing.pipeline.types import HardLimitAction
from routing.services.ledger import (
    RESERVE_NOTE,
    Reservation,
    ReservationRefused,
    budget_reserve,
    room_condition,
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
FIELDS = RoutingDecision._meta.local_concrete_fields
ATTNAMES = tuple(f.attname for f in FIELDS)
JSON_COLUMNS = frozenset(
    f.attname for f in FIELDS if f.get_internal_type() == "JSONField"
)


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
    reservation: Reservation | None = None,
) -> None:
    """Store ``payload`` (a ``RoutingResult.to_dict()``, never prompt text).

    With a ``reservation``, its amount is reserved on each of its budgets in
    the same atomic write; if a blocking budget has no room left, nothing is
    written and ``ReservationRefused`` names it. On PostgreSQL the whole write
    is one statement (one round trip); elsewhere one transaction.
    """
    columns = _columns(
        payload,
        id=decision_id,
        request_id=request_id,
        client=client,
        config_version=config_version,
        created_at=created_at,
    )
    counts = _exclusion_counts(payload.get("trace", []))
    if connection.vendor == "postgresql":
        if reservation is not None and len(reservation.budgets) > 1:
            # A refusal by one budget must undo the others' reservations.
            with transaction.atomic():
                _write_in_one_statement(columns, counts, reservation)
        else:
            _write_in_one_statement(columns, counts, reservation)
        return
    with transaction.atomic():
        RoutingDecision(**columns).save(force_insert=True)
        DecisionExclusion.objects.bulk_create(
            exclusion_rows(
                decision_id=decision_id, counts=counts, created_at=created_at
            )
        )
        if reservation is not None:
            budget_reserve(decision_id=decision_id, reservation=reservation)


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
        "details": {k: v for k, v in payload.items() if k not in COLUMNS},
    }


def _write_in_one_statement(
    columns: dict[str, Any],
    counts: Counter[str],
    reservation: Reservation | None,
) -> None:
    """PostgreSQL: reservation, ledger, decision and exclusions in one statement.

    Sub-statements of a WITH run exactly once on one snapshot; the ledger and
    decision rows are only inserted when every budget took the reservation,
    and Django's foreign keys are deferred, so the exclusion rows may name the
    decision inserted beside them. JSON columns are sent as JSON text (the
    statement casts them), which is cheaper than one adapter object each.
    """
    values = [
        json_text(columns[name]) if name in JSON_COLUMNS else columns[name]
        for name in ATTNAMES
    ]
    exclusions = [list(counts), list(counts.values())]
    with connection.cursor() as cursor:
        if reservation is None:
            cursor.execute(_statement(reserving=False), [*values, *exclusions])
            return
        budgets = reservation.budgets
        amount = reservation.amount
        cursor.execute(
            _statement(reserving=True),
            [
                amount,
                [b.pk for b in budgets],
                [reservation.period_of(b) for b in budgets],
                HardLimitAction.WARN.value,
                amount,
                len(budgets),
                amount,
                columns["id"],
                columns["created_at"],
                *values,
                *exclusions,
            ],
        )
        reserved = {row[0] for row in cursor.fetchall()}
    if len(reserved) < len(budgets):
        raise ReservationRefused(next(b.name for b in budgets if b.pk not in reserved))


@cache
def _statement(*, reserving: bool) -> str:
    """The SQL of ``_write_in_one_statement`` (built once per process)."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in FIELDS)
    # Typed placeholders: in INSERT ... SELECT an untyped NULL would be text.
    # Strings go as text so an over-long value fails as it would in VALUES
    # (a cast to varchar(n) would silently truncate it).
    typed = ", ".join(f"%s::{_cast_type(f)}" for f in FIELDS)
    insert_decision = (
        f"INSERT INTO {quote(RoutingDecision._meta.db_table)} ({columns}) "
        f"SELECT {typed}"
        + (" FROM ok WHERE ok.all_reserved" if reserving else "")
        + " RETURNING id, created_at"
    )
    insert_exclusions = (
        f"INSERT INTO {quote(DecisionExclusion._meta.db_table)} "
        "(decision_id, reconciler, excluded_count, created_at) "
        "SELECT decision.id, e.reconciler, e.excluded, decision.created_at "
        "FROM decision, unnest(%s::text[], %s::integer[]) AS e(reconciler, excluded)"
    )
    if not reserving:
        return f"WITH decision AS ({insert_decision}) {insert_exclusions}"
    return (
        "WITH reserved AS ("
        f"UPDATE {quote(Budget._meta.db_table)} AS b "
        "SET reserved_usd = b.reserved_usd + %s "
        "FROM unnest(%s::bigint[], %s::date[]) AS r(id, period_start) "
        f"WHERE b.id = r.id AND {room_condition('b')} "
        "RETURNING b.id, r.period_start), "
        "ok AS (SELECT count(*) = %s AS all_reserved FROM reserved), "
        "ledger AS ("
        f"INSERT INTO {quote(LedgerEntry._meta.db_table)} "
        "(budget_id, kind, amount_usd, decision_id, period_start, note, created_at) "
        f"SELECT reserved.id, '{LedgerKind.RESERVE.value}', %s::numeric, %s::uuid, "
        f"reserved.period_start, '{RESERVE_NOTE}', %s::timestamptz "
        "FROM reserved, ok WHERE ok.all_reserved), "
        f"decision AS ({insert_decision}), "
        f"exclusions AS ({insert_exclusions}) "
        "SELECT id FROM reserved"
    )


def _cast_type(field: Any) -> str:
    if field.get_internal_type() in ("CharField", "TextField"):
        return "text"
    return str(field.cast_db_type(connection))
