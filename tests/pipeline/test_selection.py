"""selection: strategies, scores for every candidate, route/queue/reject."""

from __future__ import annotations

from routing.pipeline import NO_VIABLE_BACKEND, InMemoryCounterStore
from routing.pipeline.scoring import smart_score
from routing.pipeline.types import Health, Outcome, Strategy

from .fleet import config, local, request, route


def test_smart_prefers_low_priority_numbers_low_load_and_few_errors() -> None:
    cfg = config(
        local("busy", pending_requests=4, max_concurrency=4),
        local("flaky", error_rate=0.9),
        local("good"),
    )
    result = route(cfg, request())
    assert result.backend_name == "good"
    assert set(result.annotations["scores"]) == {"busy", "flaky", "good"}
    assert set(result.annotations["score_breakdown"]["good"]) == {
        "priority",
        "load",
        "latency",
        "errors",
    }


def test_unknown_latency_is_neutral() -> None:
    known_slow = local("slow", latency_ema_ms=1000.0)
    unknown = local("unknown")
    assert smart_score(known_slow, {"latency": 1.0}) == smart_score(
        unknown, {"latency": 1.0}
    )


def test_ties_break_on_priority_then_name() -> None:
    cfg = config(local("b"), local("a"))
    assert route(cfg, request()).backend_name == "a"


def test_smart_weights_are_configurable() -> None:
    cfg = config(local("fast", latency_ema_ms=10.0, priority=90), local("pref"))
    assert route(cfg, request()).backend_name == "pref"
    only_latency = {"priority": 0.0, "load": 0.0, "errors": 0.0, "latency": 1.0}
    assert route(cfg, request(), weights=only_latency).backend_name == "fast"


def test_priority_strategy_picks_the_lowest_priority_number() -> None:
    cfg = config(local("a", priority=20, error_rate=0.9), local("b", priority=30))
    result = route(cfg, request(), strategy=Strategy.PRIORITY)
    assert result.backend_name == "a"


def test_round_robin_rotates_per_model_through_the_counter_store() -> None:
    from .fleet import PipelineSettings, context, default_pipeline

    cfg = config(local("a"), local("b"), local("c"))
    pipeline = default_pipeline(
        PipelineSettings(
            strategy=Strategy.ROUND_ROBIN, counter_store=InMemoryCounterStore()
        )
    )
    picks = [pipeline.route(request(), context(cfg)).backend_name for _ in range(4)]
    assert picks == ["a", "b", "c", "a"]


def test_random_strategy_is_reproducible_with_a_seed() -> None:
    from .fleet import PipelineSettings, context, default_pipeline

    cfg = config(*(local(f"b{i}") for i in range(10)))

    def picks() -> list[str | None]:
        settings = PipelineSettings(strategy=Strategy.RANDOM, random_seed=7)
        pipeline = default_pipeline(settings)
        return [pipeline.route(request(), context(cfg)).backend_name for _ in range(5)]

    assert picks() == picks()


def test_a_loading_best_backend_queues_with_a_healthy_fallback() -> None:
    cfg = config(
        local("warming", health=Health.LOADING, loading_eta_ms=1200),
        local("backup", priority=90),
    )
    result = route(cfg, request())
    assert result.outcome is Outcome.QUEUE
    assert result.backend_name == "warming"
    data = result.to_dict()
    assert data["estimated_wait_ms"] == 1200
    assert data["fallback_backend"] == "backup"


def test_a_loading_backend_without_an_eta_queues_with_the_default_wait() -> None:
    result = route(config(local("w", health=Health.LOADING)), request())
    assert result.outcome is Outcome.QUEUE
    assert result.to_dict()["estimated_wait_ms"] == 30_000
    assert result.to_dict()["fallback_backend"] is None


def test_no_remaining_candidate_is_a_no_viable_backend_reject() -> None:
    result = route(config(local("off", enabled=False)), request())
    assert result.outcome is Outcome.REJECT
    assert result.error_type == NO_VIABLE_BACKEND


def test_the_inlined_smart_formula_matches_the_scoring_helper() -> None:
    from routing.pipeline import DEFAULT_WEIGHTS

    fleet = [
        local("a", priority=10, pending_requests=3, max_concurrency=4),
        local("b", latency_ema_ms=250.0, error_rate=0.2),
        local("c", priority=100, latency_ema_ms=None),
    ]
    result = route(config(*fleet), request())
    for b in fleet:
        expected, factors = smart_score(b, DEFAULT_WEIGHTS)
        assert result.annotations["scores"][b.name] == expected
        assert result.annotations["score_breakdown"][b.name] == factors


def test_the_inlined_formula_matches_the_helper_when_cost_counts() -> None:
    from routing.pipeline import DEFAULT_WEIGHTS

    from .fleet import budget, cloud

    fleet = [cloud("a", price=0.5), cloud("b", price=0.1), local("c")]
    result = route(config(*fleet), request(max_tokens=100), budget(100, spent=80))
    costs = result.annotations["estimated_cost_usd"]
    top = max(costs.values())
    for b in fleet:
        expected, factors = smart_score(
            b, DEFAULT_WEIGHTS, cost=costs[b.name], max_cost=top
        )
        assert result.annotations["scores"][b.name] == expected
        assert result.annotations["score_breakdown"][b.name]["cost"] == factors["cost"]
