"""Stage 5 (always last): score the remaining candidates and decide.

Filters (the reconcilers before) -> weighted scorers -> picker, the shape of
the Gateway API Inference Extension's endpoint picker:

- ``smart``: every scorer scores every candidate (0-1, higher better); the score
  is the weighted mean over the scorers that count, rounded to 6 places;
- ``priority``: 1 - priority / 100;
- ``round_robin``: candidates sorted by name, the model's counter picks;
- ``random``: ``random.Random(seed).choice`` over candidates sorted by name.

The best is the highest score, then the lower priority number, then the name.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, ClassVar, Final

from mypy_extensions import mypyc_attr

from routing.pipeline.counters import CounterStore, InMemoryCounterStore
from routing.pipeline.index import Factors, weighted_row
from routing.pipeline.intent import NO_VIABLE_BACKEND, RoutingIntent
from routing.pipeline.protocols import Scorer
from routing.pipeline.scorers import BackendScorer, ScorerConfigError, load_scorer
from routing.pipeline.settings import PipelineSettings
from routing.pipeline.types import BackendSnapshot, ErrorPolicy, Health, Strategy

Scores = dict[str, float]
Breakdown = dict[str, dict[str, Any]]


@mypyc_attr(allow_interpreted_subclasses=True)
class SelectionReconciler:
    """Scores every remaining candidate and decides route, queue or reject.

    The best is routed to, or queued for when it is ``loading`` (with its
    ``loading_eta_ms`` or the default wait, and the best non-loading candidate
    as ``fallback_backend``). No candidates: ``no_viable_backend`` reject.
    Annotates ``strategy``, ``scores`` (every candidate), ``score_breakdown``
    ({backend: {scorer: value}}) and, for ``smart``, ``scorer_weights``.
    """

    name: ClassVar[str] = "selection"
    error_policy: ClassVar[ErrorPolicy] = ErrorPolicy.FAIL_CLOSED

    def __init__(self, settings: PipelineSettings | None = None) -> None:
        settings = settings or PipelineSettings()
        self.strategy = Strategy(settings.strategy)
        self.scorers: tuple[tuple[Scorer, float], ...] = tuple(
            (load_scorer(scorer), weight)
            for scorer, weight in settings.effective_scorers()
        )
        names = [s.name for s, _ in self.scorers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ScorerConfigError(f"Scorer names repeat: {', '.join(repeated)}.")
        self._optional = frozenset(
            s.name for s, _ in self.scorers if getattr(s, "optional", False)
        )
        self._plans = {
            (frozenset(used), live): _plan(self.scorers, frozenset(used), live=live)
            for n in range(len(self._optional) + 1)
            for used in combinations(sorted(self._optional), n)
            for live in (False, True)
        }
        self.default_wait_ms = settings.default_loading_wait_ms
        self.counters: CounterStore = settings.counter_store or InMemoryCounterStore()
        self._random = random.Random(settings.random_seed)

    def describe_scorers(self) -> list[dict[str, Any]]:
        """``[{"name": ..., "weight": ...}, ...]`` in order."""
        return [{"name": s.name, "weight": w} for s, w in self.scorers]

    def reconcile(self, intent: RoutingIntent) -> None:
        """Score, annotate and decide."""
        candidates = intent.candidate_list()
        label = str(self.strategy)
        intent.annotate("strategy", label)
        if not candidates:
            intent.annotate("scores", {})
            intent.annotate("score_breakdown", {})
            intent.reject(NO_VIABLE_BACKEND)
            return
        if self.strategy is Strategy.SMART:
            scores, breakdown = self.smart(candidates, intent)
        elif self.strategy is Strategy.PRIORITY:
            scores = {b.name: round6(1.0 - b.priority / 100.0) for b in candidates}
            breakdown = {b.name: {"priority": b.priority} for b in candidates}
        else:
            scores, breakdown = self.take_turns(candidates, intent.model)
        intent.annotate("scores", scores)
        intent.annotate("score_breakdown", breakdown)

        best = best_of(candidates, scores)
        score = scores[best.name]
        count = len(candidates)
        reason = (
            f"{label}: best of {count} candidate{'s' if count != 1 else ''} "
            f"(score {format(score, 'g')})"  # compiled, faster than a format spec
        )
        if best.health != Health.LOADING:
            intent.route_to(best, score=score, reason=reason)
            return
        others = [b for b in candidates if b.health != Health.LOADING]
        fallback = best_of(others, scores).name if others else None
        wait = best.loading_eta_ms
        intent.queue_for(
            best,
            score=score,
            reason=f"{reason}; backend is loading the model",
            estimated_wait_ms=wait if wait is not None else self.default_wait_ms,
            fallback_backend=fallback,
        )

    def smart(
        self, candidates: Sequence[BackendSnapshot], intent: RoutingIntent
    ) -> tuple[Scores, Breakdown]:
        """The weighted mean of the counting scorers' values, per candidate."""
        live = bool(intent.context.in_flight)
        plan = self._plans[intent.scorers_in_use & self._optional, live]
        intent.annotate("scorer_weights", dict(plan.weights))
        rows = intent.index.weighted_rows(plan.fixed)
        rest = [(s.name, w, s.score(candidates, intent)) for s, w in plan.rest]
        weight_sum = plan.weight_sum
        scores: Scores = {}
        breakdown: Breakdown = {}
        for b in candidates:
            row = rows.get(b.name)
            if row is None or row.backend is not b:
                row = weighted_row(b, plan.fixed.entries)
            # A plain running sum: ``sum()`` of floats is compensated since
            # Python 3.12 and would round some scores differently.
            total = row.total
            factors = dict(row.values)
            for name, weight, table in rest:
                value = factors[name] = table[b.name]
                total += weight * value
            scores[b.name] = round6(total / weight_sum) if weight_sum > 0 else 0.0
            breakdown[b.name] = factors
        return scores, breakdown

    def take_turns(
        self, candidates: Sequence[BackendSnapshot], model: str
    ) -> tuple[Scores, Breakdown]:
        """``round_robin`` or ``random``: the chosen one scores 1, the others 0."""
        ordered = sorted(candidates, key=lambda b: b.name)
        detail: dict[str, Any]
        if self.strategy is Strategy.ROUND_ROBIN:
            turn = self.counters.next(model)
            chosen = ordered[turn % len(ordered)]
            detail = {"turn": turn}
        else:
            chosen = self._random.choice(ordered)
            detail = {"random": True}
        scores = {b.name: 1.0 if b is chosen else 0.0 for b in candidates}
        return scores, {b.name: {**detail, "chosen": b is chosen} for b in candidates}


class _Plan:
    """How ``smart`` scores when a given set of optional scorers counts (read
    only; a plain class, as ``index.Step``)."""

    def __init__(
        self,
        weights: dict[str, float],
        weight_sum: float,
        fixed: Factors,
        rest: tuple[tuple[Scorer, float], ...],
    ) -> None:
        self.weights: Final = weights  # the counted scorers and weights, in order
        self.weight_sum: Final = weight_sum
        self.fixed: Final = fixed
        self.rest: Final = rest  # the counted scorers after ``fixed``


def _plan(
    scorers: Sequence[tuple[Scorer, float]], used: frozenset[str], *, live: bool
) -> _Plan:
    counted = [
        (scorer, weight)
        for scorer, weight in scorers
        if not getattr(scorer, "optional", False) or scorer.name in used
    ]
    weight_sum = 0.0  # a plain running sum, as the scores below
    for _, weight in counted:
        weight_sum += weight
    # The leading scorers that depend only on the backend: their values and
    # weighted sum per backend come from the index. With live in-flight counts
    # in the context, a ``live`` scorer (load) depends on them too.
    fixed = []
    for scorer, weight in counted:
        if not isinstance(scorer, BackendScorer) or (live and scorer.live):
            break
        fixed.append((scorer.name, scorer.factor, weight))
    return _Plan(
        {s.name: w for s, w in counted},
        weight_sum,
        Factors(tuple(fixed)),
        tuple(counted[len(fixed) :]),
    )


def best_of(
    candidates: Sequence[BackendSnapshot], scores: Mapping[str, float]
) -> BackendSnapshot:
    """The highest score, then the lower priority number, then the name.

    The same comparisons as ``min`` by (-score, priority, name), NaN included:
    a candidate replaces the best only when its score is higher, or equal with
    a smaller (priority, name).
    """
    best = candidates[0]
    best_score = scores[best.name]
    for b in candidates:
        score = scores[b.name]
        if score == best_score:
            if (b.priority, b.name) < (best.priority, best.name):
                best = b
        elif score > best_score:
            best, best_score = b, score
    return best


def round6(x: float) -> float:
    """``round(x, 6)``, the same float, without its decimal round trip when
    ``x`` is not within 1e-6 of a rounding tie (scores are in 0-1)."""
    y = x * 1e6
    if not -1e9 < y < 1e9:  # also NaN
        return round(x, 6)
    n = math.floor(y)
    frac = y - n
    if -1e-6 < frac - 0.5 < 1e-6:
        return round(x, 6)
    if frac > 0.5:
        n += 1
    return n / 1e6 if n else math.copysign(0.0, x)
