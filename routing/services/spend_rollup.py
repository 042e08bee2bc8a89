"""The spend rollup: usage reports summed into ``SpendDaily``, batch by batch.

Each batch is one transaction that claims up to ``BATCH_SIZE`` reports not yet
rolled up, adds their sums to their (day, client, model, backend, zone) rows and
marks them ``rolled_up``: a report is counted in the rollup exactly once, or not
yet (and then the spend report reads it raw). On PostgreSQL the claim skips rows
another worker holds (``FOR UPDATE SKIP LOCKED``), so two workers roll up
different reports at once; on SQLite a batch holds the database's write lock.
It only reads usage reports, decisions, backends and zones.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import connection, transaction

from routing.models import (
    Backend,
    PrivacyZone,
    RoutingDecision,
    SpendDaily,
    UsageReport,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000
TIME_BUDGET_S = 40.0

USAGE = UsageReport._meta.db_table
DAILY = SpendDaily._meta.db_table
DIMENSIONS = ("day", "client", "model", "backend", "zone")
FIGURES = (
    "cost_usd",
    "requests",
    "input_tokens",
    "output_tokens",
    "estimated_cost_usd",
)


def facts_joins(usage: str) -> str:
    """The decision, backend and zone of each usage row aliased ``usage``."""
    return (
        f"LEFT JOIN {RoutingDecision._meta.db_table} d ON d.id = {usage}.decision_id "
        f"LEFT JOIN {Backend._meta.db_table} b ON b.name = d.backend_name "
        f"LEFT JOIN {PrivacyZone._meta.db_table} z ON z.id = b.privacy_zone_id"
    )


def day_sql(column: str) -> str:
    """The UTC day of a timestamp column, in this database's SQL."""
    if connection.vendor == "postgresql":
        return f"({column} AT TIME ZONE 'UTC')::date"
    return f"date({column})"


def dimension_sql(usage: str) -> dict[str, str]:
    """Each dimension of a usage row aliased ``usage`` (joined by ``facts_joins``)."""
    return {
        "day": day_sql(f"{usage}.created_at"),
        "client": "COALESCE(d.client, '')",
        "model": "COALESCE(d.model, '')",
        "backend": "COALESCE(d.backend_name, '')",
        "zone": "COALESCE(z.name, '')",
    }


def _upsert_sql(source: str, usage: str, where: str) -> str:
    """Add the usage rows of ``source`` (aliased ``usage``) to their rollup rows."""
    dims = dimension_sql(usage)
    positions = ", ".join(str(i) for i in range(1, len(DIMENSIONS) + 1))
    added = ", ".join(f"{f} = {DAILY}.{f} + excluded.{f}" for f in FIGURES)
    return (
        f"INSERT INTO {DAILY} ({', '.join(DIMENSIONS)}, {', '.join(FIGURES)}) "
        f"SELECT {', '.join(dims[d] for d in DIMENSIONS)}, "
        f"SUM({usage}.cost_usd), COUNT(*), SUM({usage}.input_tokens), "
        f"SUM({usage}.output_tokens), SUM(COALESCE(d.estimated_cost_usd, 0)) "
        f"FROM {source} {facts_joins(usage)} WHERE {where} "
        # One order for every worker: upserts of the same rows queue, not deadlock.
        f"GROUP BY {positions} ORDER BY {positions} "
        f"ON CONFLICT ({', '.join(DIMENSIONS)}) DO UPDATE SET {added}"
    )


def _batch_postgresql(batch_size: int) -> int:
    sql = (
        "WITH claimed AS ("
        # ARRAY(...): the claim runs once, and the update finds its rows by
        # primary key (an IN could become a scan of the whole table).
        f"UPDATE {USAGE} AS u SET rolled_up = true WHERE u.id = ANY(ARRAY("
        f"SELECT id FROM {USAGE} WHERE NOT rolled_up ORDER BY id LIMIT %s "
        "FOR UPDATE SKIP LOCKED)) AND NOT u.rolled_up "
        "RETURNING u.decision_id, u.created_at, u.cost_usd, u.input_tokens, "
        "u.output_tokens), "
        f"added AS ({_upsert_sql('claimed c', 'c', 'true')} RETURNING 1) "
        "SELECT (SELECT COUNT(*) FROM claimed), (SELECT COUNT(*) FROM added)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [batch_size])
        claimed, _ = cursor.fetchone()
    return int(claimed)


def _batch_portable(batch_size: int) -> int:
    """SQLite: the same predicate picks the rows to add and to mark, inside one
    write transaction (``transaction_mode`` IMMEDIATE), so nothing slips between."""
    with transaction.atomic():
        ids = list(
            UsageReport.objects.filter(rolled_up=False)
            .order_by("id")
            .values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return 0
        where = "NOT u.rolled_up AND u.id <= %s"
        with connection.cursor() as cursor:
            cursor.execute(_upsert_sql(f"{USAGE} u", "u", where), [ids[-1]])
        marked = UsageReport.objects.filter(rolled_up=False, id__lte=ids[-1]).update(
            rolled_up=True
        )
        if marked != len(ids):  # cannot happen under the write lock; never guess
            raise RuntimeError(f"Rollup claimed {len(ids)} rows but marked {marked}.")
        return marked


def spend_rollup_batch(*, batch_size: int = BATCH_SIZE) -> int:
    """Roll up at most ``batch_size`` reports in one transaction; how many it did."""
    if connection.vendor == "postgresql":
        return _batch_postgresql(batch_size)
    return _batch_portable(batch_size)


@dataclass(frozen=True)
class RollupResult:
    rolled_up: int
    finished: bool


def spend_rollup(
    *, batch_size: int = BATCH_SIZE, time_budget_s: float = TIME_BUDGET_S
) -> RollupResult:
    """Roll up every report not yet rolled up, batch by batch, until none is
    left or the time budget is spent (the next run carries on)."""
    deadline = time.monotonic() + time_budget_s
    total = 0
    while True:
        count = spend_rollup_batch(batch_size=batch_size)
        total += count
        if count < batch_size:
            finished = True
            break
        if time.monotonic() >= deadline:
            finished = False
            break
    if total:
        logger.info(
            "Rolled up %d usage report(s)%s",
            total,
            "" if finished else " (time budget spent; the next run continues)",
        )
    return RollupResult(rolled_up=total, finished=finished)
