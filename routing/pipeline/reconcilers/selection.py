"""Stage 5 (always last): score the remaining candidates and decide."""

from __future__ import annotations

import random
from typing import Any

from routing.pipeline.counters import CounterStore, InMemoryCounterStore
from routing.pipeline.intent import NO_VIABLE_BACKEND, RoutingIntent
from routing.pipeline.scoring import estimate_cost, rank_key, smart_score
from routing.pipeline.settings import PipelineSettings
from routing.pipeline.types import BackendSnapshot, ErrorPolicy, Health, Strategy


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
        intent.annotate("strategy", self.strategy.value)
        if not candidates:
            intent.annotate("scores", {})
            intent.annotate("score_breakdown", {})
            intent.reject(NO_VIABLE_BACKEND)
            return
        scores, breakdown = self._score(intent, candidates)
        intent.annotate("scores", scores)
        intent.annotate("score_breakdown", breakdown)
        ranked = sorted(candidates, key=lambda b: rank_key(scores[b.name], b))
        best = ranked[0]
        score = scores[best.name]
        reason = (
            f"{self.strategy.value}: best of {len(ranked)} candidate"
            f"{'s' if len(ranked) != 1 else ''} (score {score:g})"
        )
        if best.health is Health.LOADING:
            fallback = next((b for b in ranked if b.health is not Health.LOADING), None)
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
        scores: dict[str, float] = {}
        breakdown: dict[str, dict[str, Any]] = {}
        costs: dict[str, float] | None = None
        max_cost = 0.0
        if intent.annotations.get("prefer_cheaper"):
            offers = intent.offers
            req = intent.requirements
            costs = {}
            for b in candidates:
                offer = offers.get(b.name)
                costs[b.name] = estimate_cost(offer, req) if offer is not None else 0.0
            max_cost = max(costs.values(), default=0.0)
        for backend in candidates:
            cost = costs[backend.name] if costs is not None else None
            score, factors = smart_score(backend, weights, cost=cost, max_cost=max_cost)
            scores[backend.name] = score
            breakdown[backend.name] = factors
        return scores, breakdown
