"""Replaying recorded decisions through the real pipeline: pure Python, no Django.

A backtest's worker processes (``ReplayPool``) import only this module,
``routing.pipeline`` and ``routing.decision_storage``: they start in a fraction
of a second and never open the database. They decode the selected rows
(``decision_row``) as well as replay them: reading a million compact rows is
most of a backtest's work.

- ``replay_input(row)``: the one function that reads a recorded decision's
  JSON (requirements, constraints, the strategy and round-robin turn of its
  annotations) into a ``ReplayInput``.
- ``Replayer``: runs the pipeline on a fixed configuration and budget state and
  compares the replay with the recorded decision (a ``Verdict``). Identical
  rows give identical verdicts, so callers replay each distinct row once.
- ``Tally``: the backtest's summary, counted verdict by verdict.

Determinism: ``smart`` and ``priority`` are deterministic on their inputs.
``round_robin`` and ``random`` replay the recorded choice when it is still a
candidate (each candidate is in their tie set); otherwise round robin takes the
recorded turn over today's candidates and random a choice seeded by the
decision's own input. No counter is advanced, nothing shared is written.
"""

from __future__ import annotations

import copyreg
import json
import math
import os
import pickle
import queue
import random
import subprocess
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from routing.decision_storage import DELTA, Templates, compact_text, replay_fields
from routing.pipeline import (
    PipelineBuilder,
    PipelineSettings,
    ReconcilerPipeline,
    RoutingContext,
    RoutingRequest,
    RoutingResult,
    load_reconciler,
    parse_scorers,
)
from routing.pipeline.analysis import image_tokens
from routing.pipeline.reconcilers.selection import (
    Breakdown,
    Scores,
    SelectionReconciler,
)
from routing.pipeline.rules import parse_privacy
from routing.pipeline.types import (
    BackendSnapshot,
    BudgetSnapshot,
    ConfigSnapshot,
    Outcome,
    Strategy,
    TierMode,
)

#: At most this many rejections are kept in a changed decision's ``after``.
MAX_REJECTIONS = 50
#: Where a recorded constraint was stated by the request itself.
REQUEST_SOURCES = frozenset({"body", "header", "body+header", "request"})
#: Name used for "no backend" in ``backend_shift`` keys.
NO_BACKEND = "(none)"


class DecisionRow(NamedTuple):
    """The columns a replay reads of one recorded decision, as selected.

    ``requirements`` and ``constraints`` are the JSON columns' text;
    ``request_constraints`` is None until decisions record the request's own
    constraints apart from the combined ones (then its JSON text).
    """

    requested_model: str
    client: str
    outcome: str
    backend: str
    model: str
    estimated_cost_usd: float | None
    requirements: str | None
    constraints: str | None
    strategy: str | None
    turn: int | None
    backend_tier: int | None
    request_constraints: str | None


def decision_row(
    fields: Sequence[Any], templates: Templates | None = None
) -> DecisionRow:
    """A ``DecisionRow`` from the selected columns: ``DecisionRow``'s, then a
    compact row's compact JSON, template id and delta (the JSON for the
    compact form, the other two for the delta form, read with ``templates``;
    all None for a row of the earlier form, whose columns are read as they
    are), from which the JSON fields, the strategy, the turn, the tier and the
    request's own constraints are read."""
    *columns, blob, template, delta = fields
    if delta is not None:
        blob = compact_text({"v": DELTA, "t": template, "b": delta}, templates)
    if blob is None:
        return DecisionRow._make(columns)
    return DecisionRow._make(
        [*columns[:6], *replay_fields(blob, backend_name=columns[3], model=columns[4])]
    )


@dataclass(frozen=True, slots=True)
class ReplayInput:
    """What a replay runs: the request as recorded, the strategy it was routed
    with (None: today's), the recorded choice and turn, and whether the
    request's own constraints had to be inferred (``approximate``)."""

    request: RoutingRequest
    strategy: Strategy | None
    chosen: str | None
    turn: int | None
    approximate: bool


def _json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def replay_body(
    *, input_tokens: int, output_tokens: int, vision: bool, tools: bool, json_mode: bool
) -> dict[str, Any]:
    """An OpenAI-style body whose derived facts are the given ones (no real text).

    With ``vision`` the body has one low-detail image, counted in
    ``input_tokens``. The same body as the explorer's re-run builds.
    """
    image = {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,", "detail": "low"},
    }
    if vision:
        input_tokens -= image_tokens(image)
    text = "x" * max(input_tokens, 0) * 4
    content: Any = [{"type": "text", "text": text}, image] if vision else text
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}]}
    if tools:
        body["tools"] = [
            {"type": "function", "function": {"name": "lookup", "parameters": {}}}
        ]
    if json_mode:
        body["response_format"] = {"type": "json_object"}
    if output_tokens > 0:
        body["max_tokens"] = output_tokens
    return body


def _entry(constraints: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """One recorded constraint (``{"value", "sources"}``), empty when absent."""
    entry = constraints.get(name)
    return entry if isinstance(entry, Mapping) else {}


def _from_request(entry: Mapping[str, Any]) -> bool:
    return any(source in REQUEST_SOURCES for source in entry.get("sources") or [])


def stated_constraints(request: RoutingRequest) -> dict[str, Any]:
    """The constraints ``request`` itself stated (body or headers), apart from
    any policy's: what a decision records for its replay (``replay_input``)."""
    stated: dict[str, Any] = {}
    if request.privacy is not None:
        stated["privacy"] = str(request.privacy)
    if request.min_tier is not None:
        stated["min_tier"] = request.min_tier
    if request.tier_mode is not None:
        stated["tier_mode"] = request.tier_mode.value
    if request.max_cost_usd is not None:
        stated["max_cost_usd"] = request.max_cost_usd
    if request.sources:
        stated["sources"] = dict(request.sources)
    return stated


def _inferred_constraints(
    constraints: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The request's own constraints as far as the combined ones show them
    (a request constraint weaker than a policy's was not recorded)."""
    stated: dict[str, Any] = {}
    sources: dict[str, str] = {}
    privacy = _entry(constraints, "privacy")
    if _from_request(privacy):
        # The request's own constraint is always stated first.
        stated["privacy"] = str(privacy["value"]).split("+")[0]
        sources["privacy"] = str(privacy["sources"][0])
    tier = _entry(constraints, "min_tier")
    if _from_request(tier) and tier.get("value"):
        stated["min_tier"] = int(tier["value"])
        sources["min_tier"] = "request"
    mode = _entry(constraints, "tier_mode")
    if _from_request(mode):
        stated["tier_mode"] = mode["value"]
        sources["tier_mode"] = "request"
    elif any(str(s).startswith("policy:") for s in mode.get("sources") or []):
        stated["tier_mode"] = TierMode.FLEXIBLE.value  # asked, refused by a policy
        sources["tier_mode"] = "request"
    cost = _entry(constraints, "max_cost_usd")
    if _from_request(cost) and cost.get("value"):
        stated["max_cost_usd"] = float(cost["value"])
        sources["max_cost_usd"] = "request"
    return stated, sources


def replay_input(row: DecisionRow) -> ReplayInput:
    """The request a recorded decision answered, rebuilt from its row.

    Requirements give the body (``replay_body``); the request's own
    constraints come from ``request_constraints`` when recorded
    (``{"privacy", "min_tier", "tier_mode", "max_cost_usd", "sources"}``),
    otherwise from the combined constraints' request-stated parts (then the
    input is ``approximate``).
    """
    requirements = _json(row.requirements)
    body = replay_body(
        input_tokens=int(requirements.get("estimated_input_tokens") or 0),
        output_tokens=int(requirements.get("estimated_output_tokens") or 0),
        vision=bool(requirements.get("vision")),
        tools=bool(requirements.get("tools")),
        json_mode=bool(requirements.get("json_mode")),
    )
    if row.request_constraints is not None:
        stated = _json(row.request_constraints)
        sources = {str(k): str(v) for k, v in (stated.pop("sources", {}) or {}).items()}
        approximate = False
    else:
        stated, sources = _inferred_constraints(_json(row.constraints))
        approximate = True
    privacy = stated.get("privacy")
    mode = stated.get("tier_mode")
    cost = stated.get("max_cost_usd")
    tier = stated.get("min_tier")
    request = RoutingRequest(
        model=row.requested_model,
        body=body,
        privacy=parse_privacy(privacy) if privacy else None,
        min_tier=int(tier) if tier is not None else None,
        tier_mode=TierMode(mode) if mode else None,
        max_cost_usd=float(cost) if cost is not None else None,
        sources=sources,
        client=row.client,
    )
    try:
        strategy: Strategy | None = Strategy(row.strategy) if row.strategy else None
    except ValueError:
        strategy = None
    return ReplayInput(
        request=request,
        strategy=strategy,
        chosen=row.backend or None,
        turn=row.turn,
        approximate=approximate,
    )


class ReplaySelection(SelectionReconciler):
    """Selection that replays a recorded round-robin or random choice.

    ``hint`` (set before each replay) is the recorded backend and turn: when
    the backend is still a candidate it is chosen; otherwise round robin takes
    the recorded turn over the candidates sorted by name, random a choice
    seeded by ``seed``. Never advances a counter.
    """

    hint: tuple[str | None, int | None, int] = (None, None, 0)

    def take_turns(
        self, candidates: Sequence[BackendSnapshot], model: str
    ) -> tuple[Scores, Breakdown]:
        ordered = sorted(candidates, key=lambda b: b.name)
        chosen_name, turn, seed = self.hint
        by_name = {b.name: b for b in ordered}
        detail: dict[str, Any]
        if chosen_name in by_name:
            chosen = by_name[chosen_name]
            detail = {"replayed": True}
        elif self.strategy is Strategy.ROUND_ROBIN:
            turn = turn or 0
            chosen = ordered[turn % len(ordered)]
            detail = {"turn": turn}
        else:
            chosen = random.Random(seed).choice(ordered)
            detail = {"random": True}
        scores = {b.name: 1.0 if b is chosen else 0.0 for b in candidates}
        return scores, {b.name: {**detail, "chosen": b is chosen} for b in candidates}


@dataclass(frozen=True)
class PipelineSpec:
    """How to build the replay pipelines: today's strategy (for decisions that
    recorded none), the smart scorers, extra reconcilers by dotted path."""

    strategy: str = Strategy.SMART.value
    scorers: str = ""
    extra_reconcilers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """A replay compared with the recorded decision.

    ``changed``: the outcome, the backend or the model differs (a cost alone
    does not). ``before`` and ``after`` are the changes list's JSON (as text:
    serialised once, where the replay ran, and stored as is).
    """

    changed: bool
    outcome_change: str
    before_backend: str
    after_backend: str
    newly_rejected_by: str | None
    cost_before: float
    cost_after: float
    tier_downgrade: bool
    privacy_violation: bool
    approximate: bool
    before: str
    after: str


def _rejected_by(result: RoutingResult) -> str:
    """The reconciler a reject is blamed on: the stage that removed the last
    candidates of the final attempt, else the stage that rejected."""
    trace = result.trace
    for entry in reversed(trace):
        if entry.candidates_before and not entry.candidates_after:
            return entry.reconciler
    return trace[-1].reconciler if trace else "pipeline"


def _violates_privacy(result: RoutingResult, request: RoutingRequest) -> bool:
    """Whether the replay reached a backend outside a restricted or zone
    constraint it carried (its own, or the combined ones)."""
    backend = result.backend
    if backend is None or result.outcome is Outcome.REJECT:
        return False
    stated = list(result.constraints.privacy) if result.constraints else []
    if request.privacy is not None:
        stated.append(request.privacy)
    return not all(
        c.allows(zone=backend.privacy_zone, zone_private=backend.zone_private)
        for c in stated
    )


def _money(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 6)


class Replayer:
    """Replays decision rows on one configuration and budget state.

    One pipeline per strategy (built on first use); nothing is recorded,
    reserved or counted outside this object.
    """

    def __init__(
        self,
        config: ConfigSnapshot,
        budgets: tuple[BudgetSnapshot, ...],
        spec: PipelineSpec,
    ) -> None:
        self.context = RoutingContext(config=config, budgets=budgets)
        self.spec = spec
        self._pipelines: dict[Strategy, tuple[ReconcilerPipeline, ReplaySelection]] = {}

    def _pipeline(
        self, strategy: Strategy
    ) -> tuple[ReconcilerPipeline, ReplaySelection]:
        built = self._pipelines.get(strategy)
        if built is None:
            scorers = self.spec.scorers
            settings = (
                PipelineSettings(strategy=strategy, scorers=parse_scorers(scorers))
                if scorers
                else PipelineSettings(strategy=strategy)
            )
            selection = ReplaySelection(settings)
            builder = PipelineBuilder(settings).with_defaults()
            builder.replace("selection", selection)
            for path in self.spec.extra_reconcilers:
                builder.add(load_reconciler(path), before="selection")
            built = self._pipelines[strategy] = (builder.build(), selection)
        return built

    def route(self, row: DecisionRow) -> tuple[ReplayInput, RoutingResult]:
        """Replay one row: the input rebuilt from it and the pipeline's result."""
        replayed = replay_input(row)
        strategy = replayed.strategy or Strategy(self.spec.strategy)
        pipeline, selection = self._pipeline(strategy)
        seed = zlib.crc32(repr(row).encode())
        selection.hint = (replayed.chosen, replayed.turn, seed)
        return replayed, pipeline.route(replayed.request, self.context)

    def replay(self, row: DecisionRow) -> Verdict:
        """Replay one row and compare it with what was recorded."""
        replayed, result = self.route(row)
        return compare(row, replayed, result)

    def replay_many(self, rows: Iterable[DecisionRow]) -> list[Verdict]:
        return [self.replay(row) for row in rows]


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def compare(row: DecisionRow, replayed: ReplayInput, result: RoutingResult) -> Verdict:
    """The verdict of ``result`` against the recorded ``row``."""
    after_outcome = result.outcome.value
    routed = result.outcome is not Outcome.REJECT and result.backend is not None
    after_backend = result.backend.name if routed and result.backend else ""
    after_cost = _money(result.estimated_cost_usd) if routed else None
    before_cost = _money(row.estimated_cost_usd) if row.backend else None
    changed = (
        row.outcome != after_outcome
        or row.backend != after_backend
        or row.model != result.model
    )
    newly = (
        _rejected_by(result)
        if after_outcome == Outcome.REJECT.value and row.outcome != Outcome.REJECT.value
        else None
    )
    after_tier = result.backend.capability_tier if routed and result.backend else None
    downgrade = (
        after_tier is not None
        and row.backend_tier is not None
        and after_tier < row.backend_tier
    )
    before = after = "{}"
    if changed:
        before = _dumps(
            {
                "outcome": row.outcome,
                "backend": row.backend or None,
                "model": row.model,
                "estimated_cost_usd": before_cost,
            }
        )
        after = _dumps(
            {
                "outcome": after_outcome,
                "backend": after_backend or None,
                "model": result.model,
                "estimated_cost_usd": after_cost,
                "rejections": [r.to_dict() for r in result.rejections[:MAX_REJECTIONS]],
            }
        )
    return Verdict(
        changed=changed,
        outcome_change=f"{row.outcome}->{after_outcome}",
        before_backend=row.backend,
        after_backend=after_backend,
        newly_rejected_by=newly,
        cost_before=before_cost or 0.0,
        cost_after=after_cost or 0.0,
        tier_downgrade=downgrade,
        privacy_violation=_violates_privacy(result, replayed.request),
        approximate=replayed.approximate,
        before=before,
        after=after,
    )


@dataclass
class Tally:
    """The summary, counted decision by decision (``add``) and merged."""

    total: int = 0
    changed: int = 0
    approximate: int = 0
    tier_downgrades: int = 0
    privacy_violations: int = 0
    cost_before: float = 0.0
    cost_after: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    newly_rejected_by: Counter[str] = field(default_factory=Counter)
    backend_shift: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: Verdict, count: int = 1) -> None:
        """Count ``verdict`` for ``count`` decisions."""
        self.total += count
        self.outcomes[verdict.outcome_change] += count
        self.cost_before += verdict.cost_before * count
        self.cost_after += verdict.cost_after * count
        if verdict.approximate:
            self.approximate += count
        if verdict.privacy_violation:
            self.privacy_violations += count
        if not verdict.changed:
            return
        self.changed += count
        if verdict.newly_rejected_by is not None:
            self.newly_rejected_by[verdict.newly_rejected_by] += count
        if verdict.before_backend != verdict.after_backend:
            shift = (
                f"{verdict.before_backend or NO_BACKEND}->"
                f"{verdict.after_backend or NO_BACKEND}"
            )
            self.backend_shift[shift] += count
        if verdict.tier_downgrade:
            self.tier_downgrades += count

    def summary(self, *, distinct_inputs: int) -> dict[str, Any]:
        """The contract's summary, plus ``approximate`` and ``distinct_inputs``."""
        before = round(self.cost_before, 6)
        after = round(self.cost_after, 6)
        return {
            "total": self.total,
            "unchanged": self.total - self.changed,
            "changed": self.changed,
            "outcomes": dict(sorted(self.outcomes.items())),
            "newly_rejected_by": dict(sorted(self.newly_rejected_by.items())),
            "backend_shift": dict(self.backend_shift.most_common()),
            "estimated_cost_usd": {
                "before": before,
                "after": after,
                "delta": round(after - before, 6),
            },
            "tier_downgrades": self.tier_downgrades,
            "privacy_violations": self.privacy_violations,
            "approximate": self.approximate,
            "distinct_inputs": distinct_inputs,
        }


# -- worker processes ---------------------------------------------------------------


def read_only(data: dict[Any, Any]) -> Mapping[Any, Any]:
    """``data`` as a read-only mapping (how snapshots' mappings are unpickled)."""
    return MappingProxyType(data)


class _Pickler(pickle.Pickler):
    """Pickles the snapshots' read-only mappings as plain dicts wrapped again."""

    dispatch_table = {
        **copyreg.dispatch_table,  # the snapshots' own (routing.pipeline.types)
        MappingProxyType: lambda m: (read_only, (dict(m),)),
    }


def dump_world(
    config: ConfigSnapshot, budgets: tuple[BudgetSnapshot, ...], spec: PipelineSpec
) -> bytes:
    """What a worker process needs to build its ``Replayer``, as bytes."""
    buffer = BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump((config, budgets, spec))
    return buffer.getvalue()


_worker: Replayer | None = None


def worker_init(world: bytes) -> None:
    """Build this worker process's ``Replayer`` from ``dump_world``'s bytes."""
    global _worker
    config, budgets, spec = pickle.loads(world)  # noqa: S301 - our own bytes
    _worker = Replayer(config, budgets, spec)


def worker_replay(rows: list[DecisionRow]) -> list[Verdict]:
    """Replay ``rows`` with this worker process's ``Replayer``."""
    assert _worker is not None, "worker_init did not run"
    return _worker.replay_many(rows)


def worker_decode(
    work: tuple[list[Sequence[Any]], dict[int, str]],
) -> list[DecisionRow]:
    """``decision_row`` of each selected record, with the texts of the
    templates they are stored against."""
    records, texts = work
    return [decision_row(fields, texts.__getitem__) for fields in records]


#: What a worker process does with each kind of work it is sent.
WORK: dict[str, Callable[[Any], list[Any]]] = {
    "replay": worker_replay,
    "decode": worker_decode,
}


def serve() -> None:
    """A worker process's loop (``python -c "from routing.replay import serve;
    serve()"``): the world, then ``(kind, items)`` pairs on stdin (``WORK``);
    each result (or the error) on stdout, one pickle each. Ends at end of
    input."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # only pickles go down the result pipe
    worker_init(pickle.load(stdin))  # noqa: S301 - from the parent process
    while True:
        try:
            kind, items = pickle.load(stdin)  # noqa: S301 - from the parent process
        except EOFError:
            return
        result: list[Any] | Exception
        try:
            result = WORK[kind](items)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            result = RuntimeError(f"{type(exc).__name__}: {exc}")
        pickle.dump(result, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


class ReplayPool:
    """Worker processes replaying rows: ``submit(rows)`` returns a future of
    their verdicts, ``decode(records)`` one of their ``DecisionRow``s.

    Plain child processes fed through pipes (one thread per process sends a
    list of rows and waits for its verdicts), not ``multiprocessing``: a
    Celery prefork child is a daemonic process, which ``multiprocessing``
    refuses to give children. They import only this module and the pipeline
    (no Django, no database), and end when their input closes, so they never
    outlive the backtest even if it is killed.
    """

    def __init__(self, world: bytes, workers: int) -> None:
        self._queue: queue.SimpleQueue[tuple[tuple[str, Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        root = str(Path(__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        self._processes: list[subprocess.Popen[bytes]] = []
        self._threads: list[threading.Thread] = []
        for _ in range(workers):
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
                [sys.executable, "-c", "from routing.replay import serve; serve()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(world, protocol=pickle.HIGHEST_PROTOCOL))
            process.stdin.flush()
            thread = threading.Thread(target=self._serve, args=(process,), daemon=True)
            thread.start()
            self._processes.append(process)
            self._threads.append(thread)

    def _serve(self, process: subprocess.Popen[bytes]) -> None:
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            work, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                pickle.dump(work, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
                result = pickle.load(stdout)  # noqa: S301 - our own child
            except Exception as exc:  # noqa: BLE001 - the caller sees it
                future.set_exception(exc)
                return
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    def submit(self, rows: list[DecisionRow]) -> Future[list[Verdict]]:
        future: Future[list[Verdict]] = Future()
        self._queue.put((("replay", rows), future))
        return future

    def decode(
        self, records: list[Sequence[Any]], templates: dict[int, str]
    ) -> Future[list[DecisionRow]]:
        """Decode ``records`` with the texts of the templates they use."""
        future: Future[list[DecisionRow]] = Future()
        self._queue.put((("decode", (records, templates)), future))
        return future

    def close(self) -> None:
        """Stop the threads and the processes (their input closes)."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        for process in self._processes:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
