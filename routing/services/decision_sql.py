"""PostgreSQL: a decision, its exclusions and its reservation in one statement.

Sub-statements of a WITH run exactly once, on one snapshot. The ledger and
decision rows are inserted only when every budget took the reservation (and,
for a decision routed on remembered state, only when the state guard holds);
exclusion rows name the decision inserted beside them and carry its
``created_at`` (no foreign key constraint: on PostgreSQL both tables are
partitioned by it, and an INSERT into a parent lands in the right partition). A reserving write labels the decision's ``budget_status``
with the budgets' figures once its reservation is counted, when that is worse
than the label the pipeline gave on the figures it read. JSON columns travel as JSON text that the statement
casts, which is cheaper than an adapter object per column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import connection

from routing.json_text import json_text
from routing.models import (
    Budget,
    ConfigVersion,
    DecisionExclusion,
    LedgerEntry,
    LedgerKind,
    RoutingDecision,
)
from routing.pipeline.budgets import SOFT_LIMIT_SQL
from routing.pipeline.types import HardLimitAction
from routing.services.ledger import (
    RESERVE_NOTE,
    STATUS_RANKS,
    Reservation,
    room_condition,
    status_rank_sql,
)

FIELDS = RoutingDecision._meta.local_concrete_fields
_JSON_COLUMNS = frozenset(
    f.attname for f in FIELDS if f.get_internal_type() == "JSONField"
)


@dataclass(frozen=True)
class StateGuard:
    """What a decision routed on remembered state assumed; checked as it is written.

    The decision is written only while the config and probed-state versions
    are these, the budgets are these rows in these periods, and each
    stays below its soft limit even with ``headroom`` more used: then the
    budgets cannot have changed the decision (see ``budgets_leave_room``).
    """

    config_version: int
    state_version: int
    budgets: tuple[Budget, ...]
    headroom: Decimal


@dataclass(frozen=True)
class WriteResult:
    """``guard_held`` is False when nothing was written for a stale state;
    ``status_rank`` is the worst budget status rank after the reservation
    (None without one)."""

    guard_held: bool
    reserved_budget_ids: frozenset[int]
    status_rank: int | None = None


def decision_write(
    columns: Mapping[str, Any],
    counts: Mapping[str, int],
    reservation: Reservation | None,
    guard: StateGuard | None,
) -> WriteResult:
    """Run the one statement; see the module docstring."""
    params: dict[str, Any] = {
        f"c_{name}": json_text(value) if name in _JSON_COLUMNS else value
        for name, value in columns.items()
    }
    # Lists travel as JSON text: cheaper to send than one array parameter each.
    params["exclusions"] = json_text(counts)
    if reservation is not None:
        params.update(
            amount=reservation.amount,
            reserve_on=json_text(
                [
                    {"id": b.pk, "period_start": reservation.period_of(b)}
                    for b in reservation.budgets
                ]
            ),
            warn=HardLimitAction.WARN.value,
            budget_count=len(reservation.budgets),
            status_rank=status_rank_of(columns["annotations"]),
        )
    if guard is not None:
        params.update(
            config_version=guard.config_version,
            state_version=guard.state_version,
            known=json_text(
                [
                    {
                        "id": b.pk,
                        "period_start": b.period_start,
                        "limited": b.monthly_limit_usd is not None,
                    }
                    for b in guard.budgets
                ]
            ),
            headroom=guard.headroom,
        )
    sql = _statement(reserving=reservation is not None, guarded=guard is not None)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        held, reserved, rank = cursor.fetchone()
    return WriteResult(bool(held), frozenset(reserved), rank)


def status_rank_of(annotations: Mapping[str, Any]) -> int:
    """The rank in ``STATUS_RANKS`` of the pipeline's ``budget_status`` label."""
    label = annotations.get("budget_status")
    return STATUS_RANKS.index(label) if label in STATUS_RANKS else 0


@cache
def _statement(*, reserving: bool, guarded: bool) -> str:
    """The SQL of ``decision_write`` (built once per process and variant)."""
    quote = connection.ops.quote_name
    budget = quote(Budget._meta.db_table)
    steps: list[str] = []
    if guarded:
        steps.append(f"guard AS (SELECT {_guard_condition()} AS ok)")
    if reserving:
        steps += [
            f"reserved AS (UPDATE {budget} AS b "
            "SET reserved_usd = b.reserved_usd + %(amount)s "
            "FROM jsonb_to_recordset(%(reserve_on)s::jsonb) "
            "AS r(id bigint, period_start date)"
            + (", guard" if guarded else "")
            + " WHERE b.id = r.id"
            + (" AND guard.ok" if guarded else "")
            + f" AND {room_condition('b', warn='%(warn)s', amount='%(amount)s')} "
            f"RETURNING b.id, r.period_start, {status_rank_sql('b')} AS rank)",
            "ok AS (SELECT count(*) = %(budget_count)s AS all_reserved FROM reserved)",
            f"ledger AS (INSERT INTO {quote(LedgerEntry._meta.db_table)} "
            "(budget_id, kind, amount_usd, decision_id, period_start, note, "
            f"created_at) SELECT reserved.id, '{LedgerKind.RESERVE.value}', "
            "%(amount)s::numeric, %(c_id)s::uuid, reserved.period_start, "
            f"'{RESERVE_NOTE}', %(c_created_at)s::timestamptz "
            "FROM reserved, ok WHERE ok.all_reserved)",
        ]
    # Typed placeholders: in INSERT ... SELECT an untyped NULL would be text.
    # Strings go as text so an over-long value fails as it would in VALUES
    # (a cast to varchar(n) would silently truncate it).
    columns = ", ".join(quote(f.column) for f in FIELDS)
    typed = ", ".join(
        _relabelled_annotations()
        if reserving and f.attname == "annotations"
        else f"%(c_{f.attname})s::{_cast_type(f)}"
        for f in FIELDS
    )
    condition = (
        " FROM ok WHERE ok.all_reserved"
        if reserving
        else " FROM guard WHERE guard.ok"
        if guarded
        else ""
    )
    steps += [
        f"decision AS (INSERT INTO {quote(RoutingDecision._meta.db_table)} "
        f"({columns}) SELECT {typed}{condition} RETURNING id, created_at)",
        f"exclusions AS (INSERT INTO {quote(DecisionExclusion._meta.db_table)} "
        "(decision_id, reconciler, excluded_count, created_at) "
        "SELECT decision.id, e.reconciler, e.excluded::integer, decision.created_at "
        "FROM decision, jsonb_each_text(%(exclusions)s::jsonb) "
        "AS e(reconciler, excluded))",
    ]
    held = "(SELECT ok FROM guard)" if guarded else "true"
    reserved = "ARRAY(SELECT id FROM reserved)" if reserving else "'{}'::bigint[]"
    rank = "(SELECT max(rank) FROM reserved)" if reserving else "NULL::integer"
    return f"WITH {', '.join(steps)} SELECT {held}, {reserved}, {rank}"


def _relabelled_annotations() -> str:
    """SQL: the annotations, with ``budget_status`` from the reserved figures
    when those are worse than the pipeline's label (``%(status_rank)s``)."""
    labels = ", ".join(f"'{status.value}'" for status in STATUS_RANKS)
    worst = "(SELECT max(rank) FROM reserved)"
    return (
        f"CASE WHEN {worst} > %(status_rank)s THEN jsonb_set("
        "%(c_annotations)s::jsonb, '{budget_status}', "
        f"to_jsonb((ARRAY[{labels}])[{worst} + 1])) "
        "ELSE %(c_annotations)s::jsonb END"
    )


def _guard_condition() -> str:
    """SQL: the ``StateGuard`` holds on the rows as they are now.

    The full join pairs each budget row with the remembered one of its id:
    every budget must be remembered, in the same period, with or without a
    limit as remembered, and one with a limit below its soft limit with the
    headroom; a remembered one must still exist.
    (A limit or scope changes only with the config version.)
    """
    quote = connection.ops.quote_name
    at_soft_limit = SOFT_LIMIT_SQL.format(
        used="(g.spent_usd + g.reserved_usd + %(headroom)s::numeric)",
        limit="g.monthly_limit_usd",
        percent="g.soft_limit_percent",
    )
    return (
        f"EXISTS (SELECT 1 FROM {quote(ConfigVersion._meta.db_table)} v "
        "WHERE v.id = 1 AND v.version = %(config_version)s "
        "AND v.state_version = %(state_version)s) "
        f"AND NOT EXISTS (SELECT 1 FROM {quote(Budget._meta.db_table)} g "
        "FULL JOIN jsonb_to_recordset(%(known)s::jsonb) "
        "AS k(id bigint, period_start date, limited boolean) ON k.id = g.id "
        "WHERE g.id IS NULL OR k.id IS NULL "
        "OR g.period_start IS DISTINCT FROM k.period_start "
        "OR (g.monthly_limit_usd IS NOT NULL) IS DISTINCT FROM k.limited "
        f"OR (g.monthly_limit_usd IS NOT NULL AND {at_soft_limit}))"
    )


def _cast_type(field: Any) -> str:
    if field.get_internal_type() in ("CharField", "TextField"):
        return "text"
    return str(field.cast_db_type(connection))
