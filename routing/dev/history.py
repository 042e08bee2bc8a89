"""A large decision history on PostgreSQL, fast, for benchmarks (``bench_history``).

New decisions are copies of a few template decisions already in the table (the
newest ones: real shapes, real traces), spread evenly over the last ``months``
months, each with a new uuid4, a ``bench-<run>-<n>`` request id and its
template's exclusion rows. PostgreSQL writes them itself: one ``INSERT ...
SELECT FROM generate_series`` per chunk, decisions and exclusions in the same
statement, one transaction per chunk, ``synchronous_commit`` off. Partitions
for every month are created first, so no row lands in the DEFAULT partition.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from routing.models import RoutingDecision
from routing.services.partitions import (
    DECISIONS,
    EXCLUSIONS,
    decision_partitions,
    decision_partitions_detach,
    decision_partitions_drop_detached,
    decision_partitions_ensure,
    partitioning_active,
)

#: Columns the fill sets itself; every other column is copied from a template.
_GENERATED = {"id", "request_id", "created_at"}


@dataclass(frozen=True)
class HistoryFilled:
    rows: int
    exclusion_rows: int
    seconds: float


@dataclass(frozen=True)
class QueryPlan:
    """One page query's ``EXPLAIN ANALYZE``: execution time and the plan's node types."""

    name: str
    ms: float
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class PartitionDropped:
    """``detach_s``: the month leaves the table (the decision tables locked);
    ``drop_s``: its detached tables are dropped (their files freed)."""

    name: str
    rows: int
    detach_s: float
    drop_s: float


def history_fill(
    *,
    rows: int,
    months: int,
    end: datetime | None = None,
    templates: int = 50,
    chunk: int = 200_000,
    progress: Callable[[int, float], None] | None = None,
) -> HistoryFilled:
    """Write ``rows`` decisions over the ``months`` months before ``end`` (now)."""
    if not partitioning_active():
        raise RuntimeError("bench_history needs PostgreSQL with partitioned decisions")
    end = end or timezone.now()
    back = end.year * 12 + end.month - 1 - months
    start = end.replace(year=back // 12, month=back % 12 + 1, day=min(end.day, 28))
    decision_partitions_ensure(since=start, now=end, ahead=0)
    quote = connection.ops.quote_name
    copied = [
        quote(f.column)
        for f in RoutingDecision._meta.local_concrete_fields
        if f.column not in _GENERATED
    ]
    run = f"{time.time():.0f}"
    span_s = (end - start).total_seconds()
    started = time.perf_counter()
    exclusions = 0
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_templates ON COMMIT PRESERVE ROWS AS "
            "SELECT row_number() OVER (ORDER BY created_at DESC) - 1 AS n, * "
            f"FROM {quote(DECISIONS)} ORDER BY created_at DESC LIMIT %s",
            [templates],
        )
        count = cursor.rowcount
        if count < 1:
            raise RuntimeError(
                "no decision to copy: route a few calls or run generate_decisions first"
            )
        cursor.execute(
            "CREATE TEMP TABLE bench_template_exclusions AS "
            "SELECT t.n, e.reconciler, e.excluded_count FROM bench_templates t "
            f"JOIN {quote(EXCLUSIONS)} e ON e.decision_id = t.id "
            "AND e.created_at = t.created_at"
        )
        columns = ", ".join(copied)
        from_template = ", ".join(f"t.{c}" for c in copied)
        statement = (
            f"WITH d AS (INSERT INTO {quote(DECISIONS)} "
            f"(id, request_id, created_at, {columns}) "
            "SELECT gen_random_uuid(), %(run)s::text || g, "
            "%(start)s::timestamptz + make_interval(secs => g * %(step)s::float8), "
            f"{from_template} FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g "
            "JOIN bench_templates t ON t.n = g %% %(count)s::bigint "
            "RETURNING id, created_at, request_id) "
            f"INSERT INTO {quote(EXCLUSIONS)} "
            "(decision_id, reconciler, excluded_count, created_at) "
            "SELECT d.id, x.reconciler, x.excluded_count, d.created_at FROM d "
            "JOIN bench_template_exclusions x ON x.n = "
            "substr(d.request_id, %(prefix)s::integer)::bigint %% %(count)s::bigint"
        )
        prefix = f"bench-{run}-"
        for first in range(0, rows, chunk):
            last = min(rows, first + chunk) - 1
            with transaction.atomic():
                cursor.execute("SET LOCAL synchronous_commit = off")
                cursor.execute(
                    statement,
                    {
                        "run": prefix,
                        "prefix": len(prefix) + 1,
                        "start": start,
                        "step": span_s / rows,
                        "first": first,
                        "last": last,
                        "count": count,
                    },
                )
                exclusions += cursor.rowcount
            if progress is not None:
                progress(last + 1, time.perf_counter() - started)
        cursor.execute("DROP TABLE bench_templates, bench_template_exclusions")
        cursor.execute(f"ANALYZE {quote(DECISIONS)}, {quote(EXCLUSIONS)}")
    return HistoryFilled(rows, exclusions, time.perf_counter() - started)


def history_drop_oldest() -> PartitionDropped:
    """Expire the oldest decision partition (and its exclusion partition), timed
    in the two steps ``decision_partitions_expire`` takes."""
    oldest = decision_partitions()[0]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {quote(oldest.name)}")
        count = int(cursor.fetchone()[0])
        # The month retention drops was written months ago and is on disk; rows
        # just written by history_fill are not yet (dirty buffers, writeback).
        with contextlib.suppress(DatabaseError), transaction.atomic():
            cursor.execute("CHECKPOINT")  # needs a superuser or pg_checkpoint
    os.sync()
    started = time.perf_counter()
    decision_partitions_detach(cutoff=oldest.end, keep=False)
    detached = time.perf_counter()
    decision_partitions_drop_detached()
    return PartitionDropped(
        oldest.name, count, detached - started, time.perf_counter() - detached
    )


_NODES = re.compile(
    r"(Index Only Scan|Index Scan Backward|Index Scan|Bitmap Heap Scan|Seq Scan|"
    r"Incremental Sort|Sort|Merge Append|Merge Join|Hash Join|Nested Loop)"
)


def history_explain() -> list[QueryPlan]:
    """``EXPLAIN ANALYZE`` of the explorer's and the API's page queries (51 rows,
    newest first) on the history as it is: each filter with a value of the newest
    decision, a cursor 80 % deep, and a decision by id."""
    from routing.api.filters import DecisionFilter
    from routing.explorer_selectors import ROW_COLUMNS, DecisionFilters, _filtered
    from routing.selectors import decision_list

    if not partitioning_active():
        raise RuntimeError("bench_history needs PostgreSQL with partitioned decisions")
    newest = RoutingDecision.objects.order_by("-created_at", "-id").first()
    if newest is None:
        raise RuntimeError("no decision to explain: fill the history first")
    total = RoutingDecision.objects.count()
    deep = RoutingDecision.objects.order_by("-created_at", "-id")[total * 4 // 5]
    reconciler = (
        newest.exclusions.values_list("reconciler", flat=True).first() or "privacy"
    )
    explorer = {
        "newest page": DecisionFilters(),
        f"outcome={newest.outcome}": DecisionFilters(outcome=newest.outcome),
        f"model={newest.model}": DecisionFilters(model=newest.model),
        f"backend={newest.backend_name}": DecisionFilters(backend=newest.backend_name),
        f"excluded_by={reconciler}": DecisionFilters(excluded_by=reconciler),
        f"config_version={deep.config_version}": DecisionFilters(
            config_version=deep.config_version
        ),
        "since 7 days": DecisionFilters(since=newest.created_at - timedelta(days=7)),
        "request id": DecisionFilters(request_id=deep.request_id),
    }
    cases = {f"explorer {name}": _filtered(f) for name, f in explorer.items()}
    cases[f"explorer cursor {total * 4 // 5:,} deep"] = _filtered(
        DecisionFilters()
    ).filter(
        Q(created_at__lt=deep.created_at)
        | Q(created_at=deep.created_at, id__lt=deep.id),
        created_at__lte=deep.created_at,
    )
    for key, value in (
        ("excluded_by", reconciler),
        ("model", newest.model),
        ("backend", newest.backend_name),
        ("until", deep.created_at.isoformat()),
    ):
        cases[f"api {key}"] = DecisionFilter({key: value}, decision_list()).qs
    plans = []
    for name, queryset in cases.items():
        query = queryset.only(*ROW_COLUMNS).order_by("-created_at", "-id")[:51]
        plans.append(_plan(name, query.explain(analyze=True)))
    plans.append(
        _plan(
            "decision by id",
            RoutingDecision.objects.filter(pk=deep.pk).explain(analyze=True),
        )
    )
    return plans


def _plan(name: str, text: str) -> QueryPlan:
    match = re.search(r"Execution Time: ([\d.]+)", text)
    ms = float(match.group(1)) if match else float("nan")
    return QueryPlan(name, ms, tuple(sorted(set(_NODES.findall(text)))))
