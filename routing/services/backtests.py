"""Backtests: replay recorded decisions under a draft, in the background.

``backtest_request`` stores a queued backtest (or answers the identical one
still queued or running) and enqueues ``routing.backtest_run`` after the
commit; ``backtest_run`` replays the decisions (``routing.replay``) and stores
the summary and the changed decisions; ``backtest_cancel`` stops a running one
or removes a finished one.

The replay's world is fixed when it starts: the configuration as today's with
the draft's changes applied (written in a transaction that is always rolled
back, ``draft_preview``), the backends' observed state (health, load, latency,
error rate) as the backend rows hold it now, and every budget's figures as
they stand now. Decisions are streamed in keyset batches on
``(created_at, id)``; each distinct row is replayed once (identical rows give
identical verdicts on a fixed world), on worker processes when there is
enough to do (``routing.replay.ReplayPool``). Nothing is recorded, reserved
or counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from routing.adapters import budget_snapshots, build_config_snapshot
from routing.errors import ConflictError, NexusError, NotFoundError
from routing.models import (
    ACTIVE_STATUSES,
    Backtest,
    BacktestChange,
    BacktestStatus,
    Draft,
    DraftStatus,
    RoutingDecision,
)
from routing.pipeline import RoutingResult
from routing.pipeline.types import BudgetSnapshot, ConfigSnapshot, Outcome
from routing.replay import (
    DecisionRow,
    PipelineSpec,
    Replayer,
    ReplayPool,
    Tally,
    Verdict,
    compare,
    dump_world,
)
from routing.replay import decision_row as decode_row
from routing.selectors import routing_state
from routing.services.decision_templates import template_texts
from routing.services.drafts import ChangeWriter, draft_changes_from_json, draft_preview

logger = logging.getLogger(__name__)

#: Decisions read per keyset batch (progress and cancellation are checked
#: between batches).
BATCH_SIZE = 10_000
#: The first batch (then twice as many per batch up to ``BATCH_SIZE``): the
#: first batches hold the most inputs not replayed yet, progress moves sooner.
FIRST_BATCH_SIZE = 1_000
#: Distinct rows sent to a worker process at once.
CHUNK_SIZE = 500
#: Verdicts remembered for identical rows; forgotten all at once past this.
MEMO_MAX = 50_000
#: Below this many decisions a backtest replays in its own process (starting
#: the pool would cost more than it saves).
POOL_MIN_DECISIONS = 20_000
FILTER_KEYS = ("model", "client", "outcome")
OUTCOMES = tuple(o.value for o in Outcome)

Progress = Callable[[int, int], None]


# -- requesting and cancelling ------------------------------------------------------


def backtest_request_key(
    *, draft_id: int | None, since: datetime, until: datetime, filters: dict[str, str]
) -> str:
    """The same for identical requests (at most one of them runs)."""
    text = json.dumps(
        {
            "draft": draft_id,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "filters": {k: filters[k] for k in sorted(filters)},
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _validated(
    draft_id: int | None, since: datetime, until: datetime, filters: dict[str, str]
) -> dict[str, str]:
    errors: dict[str, list[str]] = {}
    if since >= until:
        errors["until"] = ["Must be after since."]
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        errors[unknown[0]] = [f"Unknown filter; use {', '.join(FILTER_KEYS)}."]
    outcome = filters.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        errors["outcome"] = [f"Use one of {', '.join(OUTCOMES)}."]
    if draft_id is not None:
        status = (
            Draft.objects.filter(pk=draft_id).values_list("status", flat=True).first()
        )
        if status is None:
            errors["draft"] = [f"No draft {draft_id}."]
        elif status != DraftStatus.OPEN:
            errors["draft"] = [
                f"Draft {draft_id} is {status}; only an open draft can be backtested."
            ]
    if errors:
        raise NexusError(
            "The backtest request is invalid: "
            + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()),
            fields=errors,
        )
    return {k: v for k, v in filters.items() if v not in ("", None)}


def backtest_request(
    *,
    draft_id: int | None,
    since: datetime,
    until: datetime,
    filters: dict[str, str],
    actor: str,
    enqueue: bool = True,
) -> tuple[Backtest, bool]:
    """A queued backtest of the decisions recorded in ``[since, until)``
    matching ``filters``, and True; or the identical one still queued or
    running, and False (never a second replay of the same request).

    400 (``NexusError`` naming the field) for ``since >= until``, an unknown
    filter or outcome, an unknown draft or one that is not open. With
    ``enqueue`` the task is sent after the commit.
    """
    filters = _validated(draft_id, since, until, filters)
    key = backtest_request_key(
        draft_id=draft_id, since=since, until=until, filters=filters
    )
    for _ in range(3):
        running = Backtest.objects.filter(
            request_key=key, status__in=ACTIVE_STATUSES
        ).first()
        if running is not None:
            return running, False
        try:
            with transaction.atomic():
                backtest = Backtest.objects.create(
                    draft_id=draft_id,
                    since=since,
                    until=until,
                    filters=filters,
                    request_key=key,
                    created_by=actor,
                )
                if enqueue:
                    transaction.on_commit(partial(backtest_enqueue, backtest.pk))
        except IntegrityError:  # an identical request won the race
            continue
        return backtest, True
    raise ConflictError("Identical backtests keep starting and ending; try again.")


def backtest_enqueue(backtest_id: int) -> bool:
    """Send ``routing.backtest_run``; mark the backtest failed when the broker
    refuses (nothing else would ever start it)."""
    from routing.services.health import task_enqueue
    from routing.tasks import backtest_run as task

    sent = task_enqueue(
        task, (backtest_id,), about=f"backtest {backtest_id}", fallback="failed"
    )
    if not sent:
        Backtest.objects.filter(pk=backtest_id, status=BacktestStatus.QUEUED).update(
            status=BacktestStatus.FAILED,
            error="The task queue could not be reached; request the backtest again.",
            finished_at=timezone.now(),
        )
    return sent


def backtest_cancel(*, backtest_id: int) -> str:
    """Cancel a queued or running backtest (it stops at its next batch, within
    a second or two; ``cancelled``) or delete a finished one (``deleted``).
    404 for an unknown id."""
    cancelled = Backtest.objects.filter(
        pk=backtest_id, status__in=ACTIVE_STATUSES
    ).update(status=BacktestStatus.CANCELLED, finished_at=timezone.now())
    if cancelled:
        return "cancelled"
    deleted, _ = Backtest.objects.filter(pk=backtest_id).delete()
    if not deleted:
        raise NotFoundError(f"No backtest {backtest_id}.")
    return "deleted"


# -- the replay's world -------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """What every replay of one backtest runs on."""

    config: ConfigSnapshot
    budgets: tuple[BudgetSnapshot, ...]
    spec: PipelineSpec


def _read_world() -> tuple[ConfigSnapshot, tuple[BudgetSnapshot, ...]]:
    state = routing_state()
    return build_config_snapshot(state.version), budget_snapshots(state.budgets)


def backtest_world(*, draft_id: int | None, write: ChangeWriter) -> World:
    """Today's configuration with the draft's changes (None: as it is), the
    backends' observed state and the budgets' figures as they stand now.

    Built in a transaction that is always rolled back: live routing never sees
    it (no version bump; the process's cached snapshot is neither read nor
    replaced). ``NexusError`` when the draft is gone, not open, or no longer
    applies to today's configuration.
    """
    if draft_id is None:
        with transaction.atomic():  # one consistent read
            config, budgets = _read_world()
    else:
        draft = Draft.objects.filter(pk=draft_id).first()
        if draft is None or draft.status != DraftStatus.OPEN:
            state = "gone" if draft is None else draft.status
            raise NexusError(f"Draft {draft_id} is {state}; it cannot be replayed.")
        try:
            config, budgets = draft_preview(
                changes=draft_changes_from_json(draft.changes),
                write=write,
                read=_read_world,
            )
        except DjangoValidationError as exc:
            raise NexusError(
                f"Draft {draft_id} no longer applies to today's configuration: "
                + "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
    spec = PipelineSpec(
        strategy=settings.NEXUS_SELECTION_STRATEGY,
        scorers=settings.NEXUS_SCORERS,
        extra_reconcilers=tuple(settings.NEXUS_EXTRA_RECONCILERS),
    )
    return World(config, budgets, spec)


# -- reading decisions --------------------------------------------------------------

_TABLE = RoutingDecision._meta.db_table


def _row_columns() -> str:
    """The SQL of ``DecisionRow``'s columns after ``id, created_at``.

    The JSON columns travel as text (decoded once per distinct row, by
    ``routing.replay.replay_input``); from the annotations only the strategy
    and a round-robin decision's turn, from the details the chosen backend's
    tier; the request's own constraints are recorded only in the compact form
    (NULL here). Last, a row in the compact stored form's compact JSON, or
    the template id and delta of a row in the delta form (NULL for a row of
    the earlier form), from which ``routing.replay.decision_row`` reads the
    same fields and the request's own constraints.
    """
    if connection.vendor == "postgresql":
        return (
            "requested_model, client, outcome, backend_name, model, "
            "estimated_cost_usd::float8, requirements::text, constraints::text, "
            "annotations->>'strategy', "
            "CASE WHEN annotations->>'strategy' = 'round_robin' THEN "
            "(annotations->'score_breakdown'->backend_name->>'turn')::bigint END, "
            "(details->'backend'->>'capability_tier')::int, NULL, trace->>'z', "
            "(trace->>'t')::bigint, trace->>'b'"
        )
    return (
        "requested_model, client, outcome, backend_name, model, "
        "CAST(estimated_cost_usd AS REAL), requirements, constraints, "
        "json_extract(annotations, '$.strategy'), "
        "json_extract(annotations, '$.score_breakdown.\"' || backend_name || "
        "'\".turn'), "
        "json_extract(details, '$.backend.capability_tier'), NULL, "
        "json_extract(trace, '$.z'), json_extract(trace, '$.t'), "
        "json_extract(trace, '$.b')"
    )


def _where(backtest: Backtest) -> tuple[str, list[Any]]:
    clauses = ["created_at >= %s", "created_at < %s"]
    adapt = connection.ops.adapt_datetimefield_value
    params: list[Any] = [adapt(backtest.since), adapt(backtest.until)]
    filters = backtest.filters or {}
    if filters.get("model"):
        clauses.append("(requested_model = %s OR model = %s)")
        params += [filters["model"], filters["model"]]
    if filters.get("client"):
        clauses.append("client = %s")
        params.append(filters["client"])
    if filters.get("outcome"):
        clauses.append("outcome = %s")
        params.append(filters["outcome"])
    return " AND ".join(clauses), params


def backtest_decision_count(backtest: Backtest) -> int:
    """How many recorded decisions the backtest replays."""
    where, params = _where(backtest)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {_TABLE} WHERE {where}", params)
        return int(cursor.fetchone()[0])


def decision_row(*, decision_id: uuid.UUID) -> DecisionRow | None:
    """One recorded decision's row, read as a backtest reads it (None: no such
    decision)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, created_at, {_row_columns()} FROM {_TABLE} WHERE id = %s",
            [RoutingDecision._meta.pk.get_db_prep_value(decision_id, connection)],
        )
        found = cursor.fetchone()
    if found is None:
        return None
    return decode_row(found[2:], template_texts(_template_ids([found])).__getitem__)


@dataclass(frozen=True)
class DecisionReplay:
    """One recorded decision replayed under a draft (nothing recorded): the
    pipeline's full result and its verdict against the recording."""

    result: RoutingResult
    verdict: Verdict
    approximate: bool


def decision_replay(
    *, decision_id: uuid.UUID, draft_id: int | None, write: ChangeWriter
) -> DecisionReplay:
    """Replay one recorded decision as a backtest of it would: the same world
    (``backtest_world``), row and replayer. 404 for an unknown decision;
    ``NexusError`` when the draft is not open or no longer applies."""
    row = decision_row(decision_id=decision_id)
    if row is None:
        raise NotFoundError(f"No decision {decision_id}.")
    world = backtest_world(draft_id=draft_id, write=write)
    replayed, result = Replayer(world.config, world.budgets, world.spec).route(row)
    return DecisionReplay(
        result=result,
        verdict=compare(row, replayed, result),
        approximate=replayed.approximate,
    )


Batch = list[tuple[str, str, DecisionRow]]
#: A batch as selected: ``(id, created_at, *columns)`` per decision.
Records = list[Sequence[Any]]


def backtest_decision_records(
    backtest: Backtest, *, batch_size: int = BATCH_SIZE
) -> Iterator[Records]:
    """The selected decisions as selected (``_row_columns``, not decoded yet),
    oldest first, in keyset batches on ``(created_at, id)`` of
    ``FIRST_BATCH_SIZE`` doubling up to ``batch_size`` (bounded memory).

    The id and time stay as the database writes them as text (stored back as
    is for a changed decision, passed back for the next batch): parsing a
    million timestamps would cost more than the rest of the read.
    """
    where, params = _where(backtest)
    postgres = connection.vendor == "postgresql"
    head = "id::text, created_at::text" if postgres else "id, created_at"
    columns = _row_columns()
    after: tuple[str, str] | None = None
    keyset = (
        " AND created_at >= %s::timestamptz AND (created_at > %s::timestamptz "
        "OR id > %s::uuid)"
        if postgres
        else " AND created_at >= %s AND (created_at > %s OR id > %s)"
    )
    size = min(batch_size, FIRST_BATCH_SIZE)
    while True:
        extra: list[Any] = [] if after is None else [after[0], after[0], after[1]]
        sql = (
            f"SELECT {head}, {columns} FROM {_TABLE} "
            f"WHERE {where}{keyset if after else ''} "
            # The columns, not the text of the same names selected above.
            f"ORDER BY {_TABLE}.created_at, {_TABLE}.id LIMIT %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, *extra, size])
            raw = cursor.fetchall()
        if not raw:
            return
        yield raw
        if len(raw) < size:
            return
        after = (raw[-1][1], raw[-1][0])
        size = min(batch_size, size * 2)


def _template_ids(records: Records) -> set[int]:
    """The templates the records in the delta form are stored against."""
    return {r[-2] for r in records if r[-2] is not None}


def _decoded(records: Records, rows: list[DecisionRow]) -> Batch:
    return [
        (record[0], record[1], row) for record, row in zip(records, rows, strict=True)
    ]


_END = object()


def _prefetched(
    records: Callable[[], Iterator[Records]],
    decode: Callable[[Records], Callable[[], Batch]],
    depth: int = 2,
) -> Iterator[Batch]:
    """The batches of ``records()``, decoded, in order: read ahead by a thread
    with its own database connection, which hands each batch to ``decode`` as
    soon as it is read (``decode`` starts the work and returns a function
    that waits for its result), so the database reads the next batch and the
    worker processes decode it while this one is replayed.

    Inside a transaction (tests) another connection would not see its rows:
    the batches are then read here, one after the other.
    """
    if connection.in_atomic_block:
        for batch in records():
            yield decode(batch)()
        return
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in records():
                pending = decode(batch)
                while not stop.is_set():
                    try:
                        ready.put(pending, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_END)
        except BaseException as exc:  # noqa: BLE001 - raised in the reader
            ready.put(exc)
        finally:
            connection.close()  # this thread's own

    reader = threading.Thread(target=read, name="backtest-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item()
    finally:
        stop.set()
        reader.join(timeout=30)


# -- running ------------------------------------------------------------------------


class _Replays:
    """Verdicts of distinct rows, computed here or on a process pool."""

    def __init__(self, world: World, workers: int) -> None:
        self.world = world
        self.workers = workers
        self.memo: dict[DecisionRow, Verdict | None] = {}
        self.distinct = 0
        self._local: Replayer | None = None
        self._pool: ReplayPool | None = None

    def __enter__(self) -> _Replays:
        if self.workers > 1:
            world = self.world
            self._pool = ReplayPool(
                dump_world(world.config, world.budgets, world.spec), self.workers
            )
        else:
            self._local = Replayer(
                self.world.config, self.world.budgets, self.world.spec
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.close()

    def decode(self, records: Records) -> Callable[[], Batch]:
        """Start decoding a batch as selected (on the pool, one part per
        worker); a function that returns it decoded."""
        texts = template_texts(_template_ids(records))
        if self._pool is None:
            batch = _decoded(
                records, [decode_row(r[2:], texts.__getitem__) for r in records]
            )
            return lambda: batch
        pool = self._pool
        size = -(-len(records) // self.workers)
        parts = []
        for i in range(0, len(records), size):
            part = [r[2:] for r in records[i : i + size]]
            parts.append(pool.decode(part, {t: texts[t] for t in _template_ids(part)}))
        return lambda: _decoded(records, [row for p in parts for row in p.result()])

    def submit(
        self, rows: list[DecisionRow]
    ) -> list[tuple[list[DecisionRow], Future[list[Verdict]] | list[Verdict]]]:
        """Start replaying the rows not seen yet; the pending work."""
        new = []
        memo = self.memo
        for row in rows:
            if row not in memo:
                memo[row] = None
                new.append(row)
        self.distinct += len(new)
        if not new:
            return []
        if self._pool is None:
            assert self._local is not None
            return [(new, self._local.replay_many(new))]
        return [
            (chunk, self._pool.submit(chunk))
            for chunk in (
                new[i : i + CHUNK_SIZE] for i in range(0, len(new), CHUNK_SIZE)
            )
        ]

    def collect(
        self,
        pending: list[tuple[list[DecisionRow], Future[list[Verdict]] | list[Verdict]]],
    ) -> None:
        for rows, work in pending:
            verdicts = work if isinstance(work, list) else work.result()
            for row, verdict in zip(rows, verdicts, strict=True):
                self.memo[row] = verdict

    def forget(self, keep: set[DecisionRow]) -> None:
        """Bound memory: forget every verdict but those of ``keep``."""
        if len(self.memo) > MEMO_MAX:
            self.memo = {row: self.memo.get(row) for row in keep}


_CHANGE_COLUMNS = (
    "backtest_id",
    "decision_id",
    "created_at",
    "requested_model",
    "outcome_change",
    "before_backend",
    "after_backend",
    "before",
    "after",
)


def _change_values(
    backtest_id: int,
    decision_id: str,
    created_at: str,
    row: DecisionRow,
    verdict: Verdict,
) -> tuple[Any, ...]:
    """A ``BacktestChange`` row's values, in ``_CHANGE_COLUMNS`` order."""
    return (
        backtest_id,
        decision_id,
        created_at,
        row.requested_model[:200],
        verdict.outcome_change,
        verdict.before_backend[:64],
        verdict.after_backend[:64],
        verdict.before,
        verdict.after,
    )


def _utc(value: str | datetime) -> datetime:
    """A time SQLite read back (UTC, without an offset) as an aware datetime."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _changes_store(rows: list[tuple[Any, ...]]) -> None:
    """Insert changed decisions: PostgreSQL's COPY (the JSON as the replay
    wrote it), elsewhere ``bulk_create``."""
    if connection.vendor == "postgresql":
        table = BacktestChange._meta.db_table
        listed = ", ".join(_CHANGE_COLUMNS)
        with connection.cursor() as cursor:
            copy_sql = f"COPY {table} ({listed}) FROM STDIN"
            with cursor.cursor.copy(copy_sql) as copy:
                for values in rows:
                    copy.write_row(values)
        return
    BacktestChange.objects.bulk_create(
        [
            BacktestChange(
                **dict(zip(_CHANGE_COLUMNS[:2], values[:2], strict=True)),
                **dict(zip(_CHANGE_COLUMNS[3:-2], values[3:-2], strict=True)),
                created_at=_utc(values[2]),
                before=json.loads(values[-2]),
                after=json.loads(values[-1]),
            )
            for values in rows
        ],
        batch_size=2000,
    )


def _claim(backtest_id: int) -> Backtest | None:
    """Queued -> running (compare-and-set); None when it is not queued."""
    claimed = Backtest.objects.filter(
        pk=backtest_id, status=BacktestStatus.QUEUED
    ).update(status=BacktestStatus.RUNNING, started_at=timezone.now())
    if not claimed:
        return None
    return Backtest.objects.get(pk=backtest_id)


def _still_running(backtest_id: int, **fields: Any) -> bool:
    return bool(
        Backtest.objects.filter(pk=backtest_id, status=BacktestStatus.RUNNING).update(
            **fields
        )
    )


def default_workers(total: int) -> int:
    """Processes to replay ``total`` decisions on: ``NEXUS_BACKTEST_WORKERS``
    when set, else one per core from ``POOL_MIN_DECISIONS`` on (1: in this
    process)."""
    configured = int(settings.NEXUS_BACKTEST_WORKERS)
    if configured > 0:
        return configured
    return (os.cpu_count() or 1) if total >= POOL_MIN_DECISIONS else 1


def backtest_run(
    *,
    backtest_id: int,
    write: ChangeWriter,
    workers: int | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> Backtest | None:
    """Replay a queued backtest's decisions and store its summary and changes.

    Claims it (queued -> running; None when it is not queued: a duplicate
    message, or cancelled), counts the decisions first (``progress_total``),
    then streams them in batches, storing ``progress_done`` and the changed
    decisions after each and stopping when it was cancelled. ``workers`` > 1
    replays on that many worker processes (default: ``default_workers``). A
    failure is stored as ``failed`` with its message. ``progress(done, total)`` is called per batch.
    """
    backtest = _claim(backtest_id)
    if backtest is None:
        return None
    started = time.perf_counter()
    try:
        total = backtest_decision_count(backtest)
        if not _still_running(backtest_id, progress_total=total):
            return Backtest.objects.filter(pk=backtest_id).first()
        if progress is not None:
            progress(0, total)
        world = backtest_world(draft_id=backtest.draft_id, write=write)
        if workers is None:
            workers = default_workers(total)
        tally, distinct, finished = _replay_all(
            backtest, world, workers, total, progress, batch_size
        )
    except Exception as exc:
        logger.exception("backtest %s failed", backtest_id)
        message = (
            exc.message
            if isinstance(exc, NexusError)
            else f"{type(exc).__name__}: {exc}"
        )
        Backtest.objects.filter(pk=backtest_id, status=BacktestStatus.RUNNING).update(
            status=BacktestStatus.FAILED,
            error=message[:2000],
            finished_at=timezone.now(),
        )
        return Backtest.objects.filter(pk=backtest_id).first()
    elapsed = time.perf_counter() - started
    if finished:
        summary = tally.summary(distinct_inputs=distinct)
        _still_running(
            backtest_id,
            status=BacktestStatus.DONE,
            summary=summary,
            progress_done=tally.total,
            finished_at=timezone.now(),
        )
        logger.info(
            "backtest %s: %s decisions (%s distinct inputs, %s changed) in %.1f s",
            backtest_id,
            tally.total,
            distinct,
            tally.changed,
            elapsed,
        )
    return Backtest.objects.filter(pk=backtest_id).first()


def _replay_all(
    backtest: Backtest,
    world: World,
    workers: int,
    total: int,
    progress: Progress | None,
    batch_size: int,
) -> tuple[Tally, int, bool]:
    """(tally, distinct inputs, finished: False when cancelled)."""
    tally = Tally()
    done = 0

    def counted(batch: Batch, pending: list[Any]) -> bool:
        """Count a replayed batch; False when the backtest was cancelled."""
        nonlocal done
        done += _count(backtest.pk, replays, tally, batch, pending)
        if not _still_running(backtest.pk, progress_done=done):
            return False
        if progress is not None:
            progress(done, total)
        return True

    with _Replays(world, workers) as replays:
        batches = _prefetched(
            partial(backtest_decision_records, backtest, batch_size=batch_size),
            replays.decode,
        )
        previous: tuple[Batch, list[Any]] | None = None
        for batch in batches:
            # Replay this batch while the previous one is counted and stored.
            pending = replays.submit([row for _, _, row in batch])
            if previous is not None:
                if not counted(*previous):
                    return tally, replays.distinct, False
                replays.forget({row for _, _, row in batch})
            previous = (batch, pending)
        if previous is not None and not counted(*previous):
            return tally, replays.distinct, False
        return tally, replays.distinct, True


def _count(
    backtest_id: int,
    replays: _Replays,
    tally: Tally,
    batch: Batch,
    pending: list[Any],
) -> int:
    """Count a batch whose replays were submitted; store its changed decisions."""
    replays.collect(pending)
    memo = replays.memo
    changes = []
    add = tally.add
    for decision_id, created_at, row in batch:
        verdict = memo[row]
        assert verdict is not None
        add(verdict)
        if verdict.changed:
            changes.append(
                _change_values(backtest_id, decision_id, created_at, row, verdict)
            )
    if changes:
        _changes_store(changes)
    return len(batch)
