"""PostgreSQL partitions of recorded decisions: create them ahead, expire old ones.

``routing_routingdecision`` and ``routing_decisionexclusion`` are range-partitioned
by ``created_at`` with the same bounds (migration 0017): one partition per period
(``NEXUS_DECISION_PARTITION_PERIOD``, UTC), named ``<table>_p<YYYYMMDD>`` after
its first day, and a ``<table>_default`` partition for any row no period covers.
An exclusion row has its decision's ``created_at``, so a decision and its
exclusions always sit in partitions of the same period and expire together.

Creating a partition whose range holds rows of the DEFAULT partition moves those
rows into it (PostgreSQL would refuse the partition otherwise). Creating and
detaching partitions lock the two parent tables, only when there is work to do,
decisions first (the order a decision is written in), with ``lock_timeout`` so a
long query cannot queue every write behind them; a timeout is an
``OperationalError`` and the task retries. SQLite keeps plain tables: nothing
here applies and ``partitioning_active()`` says so.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from routing.models import DecisionExclusion, RoutingDecision

logger = logging.getLogger(__name__)

DECISIONS = RoutingDecision._meta.db_table
EXCLUSIONS = DecisionExclusion._meta.db_table
#: Decisions first: ``decision_write`` inserts into them first.
TABLES = (DECISIONS, EXCLUSIONS)
#: Longer than deadlock_timeout (1 s by default), after which PostgreSQL cancels an
#: autovacuum of a partition that is in the way; short enough that decision writes
#: queued behind the lock request are not held for long.
LOCK_TIMEOUT = "3s"
EXPIRED_SUFFIX = "_expired"
_BOUNDS = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    """One partition of ``table`` holding ``start <= created_at < end``."""

    table: str
    name: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PartitionsEnsured:
    """Partitions created (both tables), rows moved out of the DEFAULT partitions,
    and decisions left there (older than retention, or beyond the periods ahead)."""

    created: list[str] = field(default_factory=list)
    moved_rows: int = 0
    default_rows: int = 0


@dataclass(frozen=True)
class PartitionsExpired:
    """Partitions dropped, or detached when ``detached`` (both tables)."""

    expired: list[str] = field(default_factory=list)
    detached: bool = False


def partitioning_active() -> bool:
    """Whether the decisions table is a partitioned table (PostgreSQL after 0017)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relkind FROM pg_class WHERE oid = %s::regclass", [DECISIONS]
        )
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def period_start(period: str, at: datetime) -> datetime:
    """The start (UTC midnight) of the ``month``, ISO ``week`` or ``day`` holding ``at``."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown partition period {period!r}")


def period_next(period: str, start: datetime) -> datetime:
    """The start of the period after the one starting at ``start``."""
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def decision_partitions(*, table: str = DECISIONS) -> list[Partition]:
    """``table``'s range partitions by start (the DEFAULT partition is not one)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [table],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, bound in rows:
        match = _BOUNDS.fullmatch(bound)
        if match is not None:
            start, end = (datetime.fromisoformat(b) for b in match.groups())
            partitions.append(Partition(table, name, start, end))
    return sorted(partitions, key=lambda p: p.start)


@transaction.atomic
def decision_partitions_ensure(
    *,
    now: datetime | None = None,
    ahead: int | None = None,
    period: str | None = None,
    retention_days: int | None = None,
    since: datetime | None = None,
) -> PartitionsEnsured:
    """Partitions for this period and ``ahead`` more (and every period from
    ``since`` on, when given), and for every period within retention that has
    rows in the DEFAULT partition (moved into the new one)."""
    if not partitioning_active():
        return PartitionsEnsured()
    now = now or timezone.now()
    period = period or settings.NEXUS_DECISION_PARTITION_PERIOD
    ahead = settings.NEXUS_DECISION_PARTITIONS_AHEAD if ahead is None else ahead
    days = retention_days or settings.NEXUS_DECISION_RETENTION_DAYS
    cutoff = now - timedelta(days=days)
    horizon = period_start(period, now)
    for _ in range(ahead + 1):
        horizon = period_next(period, horizon)
    wanted = []
    start = period_start(period, min(since or now, now))
    while start < horizon:
        wanted.append(start)
        start = period_next(period, start)
    if not _missing(wanted, period) and not _strays(cutoff, horizon, period):
        return PartitionsEnsured(default_rows=_default_rows())
    with connection.cursor() as cursor:
        _lock(cursor)
        starts = sorted(set(wanted) | set(_strays(cutoff, horizon, period)))
        created: list[str] = []
        moved = 0
        for start, end in _missing(starts, period):
            for table in TABLES:
                name, rows = _partition_create(cursor, table, start, end)
                created.append(name)
                moved += rows
    default_rows = _default_rows()
    if created:
        logger.info(
            "Created decision partitions %s (%d row(s) moved out of the default "
            "partition)",
            ", ".join(created),
            moved,
        )
    return PartitionsEnsured(
        created=created, moved_rows=moved, default_rows=default_rows
    )


def decision_partitions_expire(
    *, cutoff: datetime, detach: bool | None = None
) -> PartitionsExpired:
    """Detach every partition, of both tables, that ends by ``cutoff``; then drop
    it, unless ``detach`` (kept under its name for the operator to archive).

    Two transactions, not one: detaching changes the catalog only, so the lock
    on the decision tables is held for milliseconds; dropping the detached
    tables frees their files (about 0.6 s per 2 GB on this machine's disk) and
    locks nothing a request uses. A table detached to be dropped is renamed
    ``<name>_expired`` first, so a run stopped between the two steps is finished
    by the next one.
    """
    if detach is None:
        detach = settings.NEXUS_DECISION_PARTITION_EXPIRY == "detach"
    if not partitioning_active():
        return PartitionsExpired(detached=detach)
    expired = decision_partitions_detach(cutoff=cutoff, keep=detach)
    if not detach:
        decision_partitions_drop_detached()
    return PartitionsExpired(expired=expired, detached=detach)


@transaction.atomic
def decision_partitions_detach(*, cutoff: datetime, keep: bool) -> list[str]:
    """Detach every partition, of both tables, that ends by ``cutoff``; unless
    ``keep``, rename it ``<name>_expired`` for ``decision_partitions_drop_detached``."""
    if not [p for p in decision_partitions() if p.end <= cutoff]:
        return []
    expired: list[str] = []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        _lock(cursor)
        for table in TABLES:
            for partition in decision_partitions(table=table):
                if partition.end > cutoff:
                    continue
                name = quote(partition.name)
                cursor.execute(f"ALTER TABLE {quote(table)} DETACH PARTITION {name}")
                if not keep:
                    renamed = quote(partition.name + EXPIRED_SUFFIX)
                    cursor.execute(f"ALTER TABLE {name} RENAME TO {renamed}")
                expired.append(partition.name)
    logger.info(
        "Detached expired decision partitions %s%s",
        ", ".join(expired),
        "" if keep else " (to be dropped)",
    )
    return expired


def decision_partitions_drop_detached() -> list[str]:
    """Drop the partitions detached to be dropped (``<name>_expired``), one
    transaction each."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
            "AND relnamespace = current_schema()::regnamespace "
            "AND (relname LIKE %s OR relname LIKE %s) ORDER BY relname",
            [_expired_pattern(table) for table in TABLES],
        )
        names = [row[0] for row in cursor.fetchall()]
    quote = connection.ops.quote_name
    for name in names:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {quote(name)}")
    if names:
        logger.info("Dropped expired decision partitions %s", ", ".join(names))
    return names


def _expired_pattern(table: str) -> str:
    """A LIKE pattern for ``table``'s partitions detached to be dropped."""
    return f"{table}_p%{EXPIRED_SUFFIX}".replace("_", "\\_")


def decision_partitions_analyze() -> bool:
    """``ANALYZE`` both partitioned tables (and so each partition); whether it ran.

    Autovacuum analyzes each partition as it fills but never a partitioned
    parent, whose statistics the planner uses for queries across partitions
    (an "excluded by" page took seconds without them). Sampling is bounded
    (``default_statistics_target``), a few seconds per million decisions here.
    """
    if not partitioning_active():
        return False
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(quote(t) for t in TABLES)}")
    return True


def _lock(cursor: CursorWrapper) -> None:
    quote = connection.ops.quote_name
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    cursor.execute(
        f"LOCK TABLE {', '.join(quote(t) for t in TABLES)} IN ACCESS EXCLUSIVE MODE"
    )


def _missing(starts: list[datetime], period: str) -> list[tuple[datetime, datetime]]:
    """The parts of the periods starting at ``starts`` that no partition covers
    (a period partly covered, after a change of period, gets the rest)."""
    existing = [(p.start, p.end) for p in decision_partitions()]
    missing = []
    for start in sorted(starts):
        pieces = [(start, period_next(period, start))]
        for low, high in existing:
            pieces = [
                part
                for a, b in pieces
                for part in ((a, min(b, low)), (max(a, high), b))
                if part[0] < part[1]
            ]
        missing += pieces
    return missing


def _strays(cutoff: datetime, horizon: datetime, period: str) -> list[datetime]:
    """Starts of the periods of rows in the DEFAULT partition that are within
    retention and before ``horizon`` (those get a partition of their own)."""
    unit = {"month": "month", "week": "week", "day": "day"}[period]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT date_trunc(%s, created_at, 'UTC') FROM "
            f"{connection.ops.quote_name(DECISIONS + '_default')} "
            "WHERE created_at >= %s AND created_at < %s",
            [unit, cutoff, horizon],
        )
        return [row[0] for row in cursor.fetchall()]


def _default_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {connection.ops.quote_name(DECISIONS + '_default')}"
        )
        count: int = cursor.fetchone()[0]
    if count:
        logger.warning(
            "%d decision(s) in the default partition (older than retention: deleted "
            "by the retention task; further ahead than the partitions: kept there)",
            count,
        )
    return count


def _partition_create(
    cursor: CursorWrapper, table: str, start: datetime, end: datetime
) -> tuple[str, int]:
    """Create ``table``'s partition for [start, end), moving its rows out of the
    DEFAULT partition first; its name and the rows moved."""
    quote = connection.ops.quote_name
    name = f"{table}_p{start:%Y%m%d}"
    default = quote(f"{table}_default")
    bounds = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    within = f"created_at >= '{start.isoformat()}' AND created_at < '{end.isoformat()}'"
    moving = quote(f"{name}_moving")
    cursor.execute(
        f"CREATE TEMP TABLE {moving} ON COMMIT DROP AS "
        f"SELECT * FROM {default} WHERE {within}"
    )
    rows = cursor.rowcount
    if rows:
        cursor.execute(f"DELETE FROM {default} WHERE {within}")
    cursor.execute(
        f"CREATE TABLE {quote(name)} PARTITION OF {quote(table)} FOR VALUES {bounds}"
    )
    if rows:
        cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM {moving}")
    cursor.execute(f"DROP TABLE {moving}")
    return name, rows
