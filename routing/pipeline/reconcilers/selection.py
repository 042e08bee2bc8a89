"""Stage 5 (always last): score the remaining candidates and decide."""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from routing.pipeline.counters import CounterStore, InMemoryCounterStore
from routing.pipeline.intent import NO_VIABLE_BACKEND, RoutingIntent
from routing.pipeline.scoring import (
    LATENCY_REFERENCE_MS,
    NEUTRAL_LATENCY,
    estimated_costs,
)
from routing.pipeline.settings import PipelineSettings
from routing.pipeline.types import BackendSnapshot, ErrorPolicy, Health, Strategy

_LOADING = Health.LOADING  # bound once: Enum class attribute access is slow


class SelectionReconciler:
    """Scores every remaining candidate and decides route, queue or reject.

    Strategies: ``smart`` (weighted factors, see ``scoring``), ``round_robin``
    (per-model counter from a ``CounterStore``, over candidates sorted by name),
    ``priority`` (lowest priority number), ``random`` (``random.Random(seed)``).
    Ties break on score, then lower priority number, then name. The best is
    routed to, or queued for when it is ``loading`` (with its ``loading_eta_ms``
    or the default wait, and the best non-loading candidate as
    ``fallback_backend``). No candidates: ``no_viable_backend`` reject.
    Annotates ``strategy``, ``scores`` (every candidate) and ``score_breakdown``.
    """

    name = "selection"
    error_policy = ErrorPolicy.FAIL_CLOSED

    def __init__(self, settings: PipelineSettings | None = None) -> None:
        settings = settings or PipelineSettings()
        self.strategy = Strategy(settings.strategy)
        self.weights = settings.effective_weights()
        self.default_wait_ms = settings.default_loading_wait_ms
        self.counters: CounterStore = settings.counter_store or InMemoryCounterStore()
        self._random = random.Random(settings.random_seed)

    def reconcile(self, intent: RoutingIntent) -> None:
        """Score, annotate and decide."""
        candidates = intent.candidate_list()
        annotations = intent.annotations
        label = self.strategy._value_  # = .value, minus 2 calls
        annotations["strategy"] = label
        if not candidates:
            annotations["scores"] = {}
            annotations["score_breakdown"] = {}
            intent.reject(NO_VIABLE_BACKEND)
            return
        scores, breakdown = self._score(intent, candidates)
        annotations["scores"] = scores
        annotations["score_breakdown"] = breakdown
        best = _best(candidates, scores)
        score = scores[best.name]
        count = len(candidates)
        reason = (
            f"{label}: best of {count} candidate"
            f"{'s' if count != 1 else ''} (score {score:g})"
        )
        if best.health == _LOADING:
            others = [b for b in candidates if b.health != _LOADING]
            fallback = _best(others, scores) if others else None
            wait = best.loading_eta_ms
            intent.queue_for(
                best,
                score=score,
                reason=f"{reason}; backend is loading the model",
                estimated_wait_ms=wait if wait is not None else self.default_wait_ms,
                fallback_backend=fallback.name if fallback is not None else None,
            )
        else:
            intent.route_to(best, score=score, reason=reason)

    def _score(
        self, intent: RoutingIntent, candidates: list[BackendSnapshot]
    ) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
        strategy = self.strategy
        if strategy is Strategy.SMART:
            return self._smart(intent, candidates)
        if strategy is Strategy.PRIORITY:
            scores = {b.name: round(1.0 - b.priority / 100.0, 6) for b in candidates}
            return scores, {b.name: {"priority": b.priority} for b in candidates}
        ordered = sorted(candidates, key=lambda b: b.name)
        if strategy is Strategy.ROUND_ROBIN:
            turn = self.counters.next(intent.model)
            chosen = ordered[turn % len(ordered)]
            detail: dict[str, Any] = {"turn": turn}
        else:
            chosen = self._random.choice(ordered)
            detail = {"random": True}
        scores = {b.name: 1.0 if b is chosen else 0.0 for b in candidates}
        return scores, {b.name: {**detail, "chosen": b is chosen} for b in candidates}

    def _smart(
        self, intent: RoutingIntent, candidates: list[BackendSnapshot]
    ) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
        weights = self.weights
        w_priority = weights["priority"]
        w_load = weights["load"]
        w_latency = weights["latency"]
        w_errors = weights["errors"]
        model = intent.model
        # The four backend factors and their weighted sum depend only on the
        # snapshot and these weights: computed once per snapshot and model.
        table = intent.index.memo(
            ("smart", model, w_priority, w_load, w_latency, w_errors),
            lambda: {
                b.name: _base_score(b, w_priority, w_load, w_latency, w_errors)
                for b in intent.index.serving.get(model, ())
            },
        )
        scores: dict[str, float] = {}
        breakdown: dict[str, dict[str, Any]] = {}
        if not intent.annotations.get("prefer_cheaper"):
            for b in candidates:
                found = table.get(b.name)
                if found is None or found.backend is not b:
                    found = _base_score(b, w_priority, w_load, w_latency, w_errors)
                scores[b.name] = found.score
                breakdown[b.name] = dict(found.factors)
            return scores, breakdown

        costs = estimated_costs(intent)
        max_cost = max(costs.values(), default=0.0)
        w_cost = weights["cost"]
        weight_sum = w_priority + w_load + w_latency + w_errors + w_cost
        for b in candidates:
            found = table.get(b.name)
            if found is None or found.backend is not b:
                found = _base_score(b, w_priority, w_load, w_latency, w_errors)
            cost = costs[b.name]
            factor = 1.0 - min(max(cost, 0.0) / max_cost, 1.0) if max_cost > 0 else 1.0
            total = found.total + w_cost * factor
            scores[b.name] = round(total / weight_sum, 6) if weight_sum > 0 else 0.0
            breakdown[b.name] = {**found.factors, "cost": factor}
        return scores, breakdown


class _BaseScore(NamedTuple):
    backend: BackendSnapshot
    factors: dict[str, float]  # priority, load, latency, errors (copied out)
    total: float  # their weighted sum
    score: float  # the smart score when cost does not count


def _base_score(
    b: BackendSnapshot,
    w_priority: float,
    w_load: float,
    w_latency: float,
    w_errors: float,
) -> _BaseScore:
    """The smart strategy's backend factors (``scoring.smart_score``'s formula,
    inlined for speed; a test checks they agree), their weighted sum and score."""
    priority = 1.0 - min(max(b.priority, 0), 100) / 100.0
    load = 1.0 - min(max(b.pending_requests, 0) / max(b.max_concurrency, 1), 1.0)
    ms = b.latency_ema_ms
    ref = LATENCY_REFERENCE_MS
    latency = NEUTRAL_LATENCY if ms is None else ref / (ref + max(ms, 0.0))
    errors = 1.0 - min(max(b.error_rate, 0.0), 1.0)
    total = (
        w_priority * priority + w_load * load + w_latency * latency + w_errors * errors
    )
    weight_sum = w_priority + w_load + w_latency + w_errors + 0.0
    score = round(total / weight_sum, 6) if weight_sum > 0 else 0.0
    factors = {"priority": priority, "load": load, "latency": latency, "errors": errors}
    return _BaseScore(b, factors, total, score)


def _best(
    candidates: list[BackendSnapshot], scores: dict[str, float]
) -> BackendSnapshot:
    """``min(candidates, key=lambda b: rank_key(scores[b.name], b))`` without a
    key tuple per candidate: the same comparisons, NaN scores included."""
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
