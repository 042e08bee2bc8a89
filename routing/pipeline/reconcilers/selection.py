"""Stage 5 (always last): score the remaining candidates and decide."""

from __future__ import annotations

import random
from typing import Any

from routing.pipeline.counters import CounterStore, InMemoryCounterStore
from routing.pipeline.intent import NO_VIABLE_BACKEND, RoutingIntent
from routing.pipeline.scoring import (
    LATENCY_REFERENCE_MS,
    NEUTRAL_LATENCY,
    estimate_cost,
    rank_key,
)
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

        def key(b: BackendSnapshot) -> tuple[float, int, str]:
            return rank_key(scores[b.name], b)

        best = min(candidates, key=key)
        score = scores[best.name]
        count = len(candidates)
        reason = (
            f"{self.strategy.value}: best of {count} candidate"
            f"{'s' if count != 1 else ''} (score {score:g})"
        )
        if best.health == Health.LOADING:
            others = [b for b in candidates if b.health != Health.LOADING]
            fallback = min(others, key=key) if others else None
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
        # Hot path: the same formula as ``scoring.smart_score``, inlined (a test
        # checks they agree).
        w_priority = weights["priority"]
        w_load = weights["load"]
        w_latency = weights["latency"]
        w_errors = weights["errors"]
        w_cost = weights["cost"] if costs is not None else 0.0
        weight_sum = w_priority + w_load + w_latency + w_errors + w_cost
        ref = LATENCY_REFERENCE_MS
        for b in candidates:
            priority = 1.0 - min(max(b.priority, 0), 100) / 100.0
            load = 1.0 - min(
                max(b.pending_requests, 0) / max(b.max_concurrency, 1), 1.0
            )
            ms = b.latency_ema_ms
            latency = NEUTRAL_LATENCY if ms is None else ref / (ref + max(ms, 0.0))
            errors = 1.0 - min(max(b.error_rate, 0.0), 1.0)
            total = (
                w_priority * priority
                + w_load * load
                + w_latency * latency
                + w_errors * errors
            )
            factors = {
                "priority": priority,
                "load": load,
                "latency": latency,
                "errors": errors,
            }
            if costs is not None:
                cost = costs[b.name]
                factor = (
                    1.0 - min(max(cost, 0.0) / max_cost, 1.0) if max_cost > 0 else 1.0
                )
                factors["cost"] = factor
                total += w_cost * factor
            scores[b.name] = round(total / weight_sum, 6) if weight_sum > 0 else 0.0
            breakdown[b.name] = factors
        return scores, breakdown
