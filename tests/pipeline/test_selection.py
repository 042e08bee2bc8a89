"""selection: strategies, scores for every candidate, route/queue/reject."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from routing.pipeline import NO_VIABLE_BACKEND, InMemoryCounterStore
from routing.pipeline.reconcilers.selection import round6
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
    result = route(config(known_slow, unknown), request(), weights={"latency": 1.0})
    breakdown = result.annotations["score_breakdown"]
    assert breakdown["slow"]["latency"] == breakdown["unknown"]["latency"] == 0.5


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


def test_the_smart_score_is_the_documented_weighted_mean() -> None:
    fleet = [
        local("a", priority=10, pending_requests=3, max_concurrency=4),
        local("b", priority=50, latency_ema_ms=250.0, error_rate=0.2),
    ]
    result = route(config(*fleet), request())
    # a: priority 0.9, load 0.25, latency 0.5 (unknown), errors 1.0
    # b: priority 0.5, load 1.0, latency 1000/1250 = 0.8, errors 0.8
    assert result.annotations["score_breakdown"]["a"] == {
        "priority": 0.9,
        "load": 0.25,
        "latency": 0.5,
        "errors": 1.0,
    }
    assert result.annotations["scores"] == {
        "a": round(0.4 * 0.9 + 0.25 * 0.25 + 0.2 * 0.5 + 0.15 * 1.0, 6),
        "b": round(0.4 * 0.5 + 0.25 * 1.0 + 0.2 * 0.8 + 0.15 * 0.8, 6),
    }
    assert result.annotations["scorer_weights"] == {
        "priority": 0.4,
        "load": 0.25,
        "latency": 0.2,
        "errors": 0.15,
    }


def test_the_cost_scorer_counts_with_its_weight_only_at_a_budget_limit() -> None:
    from .fleet import budget, cloud

    fleet = [cloud("a", price=0.5), cloud("b", price=0.1)]
    calm = route(config(*fleet), request(max_tokens=100), budget(100, spent=10))
    assert "cost" not in calm.annotations["scorer_weights"]
    assert "cost" not in calm.annotations["score_breakdown"]["a"]
    tight = route(config(*fleet), request(max_tokens=100), budget(100, spent=80))
    assert tight.annotations["scorer_weights"]["cost"] == 0.5
    breakdown = tight.annotations["score_breakdown"]
    assert breakdown["a"]["cost"] == 0.0  # the most expensive
    assert breakdown["b"]["cost"] == 1.0 - 0.1 / 0.5
    weights = tight.annotations["scorer_weights"]
    for name in ("a", "b"):
        total = sum(weights[k] * v for k, v in breakdown[name].items())
        expected = round(total / sum(weights.values()), 6)
        assert abs(tight.annotations["scores"][name] - expected) <= 1e-6


@given(st.floats(allow_nan=True, allow_infinity=True) | st.floats(0.0, 1.0))
def test_round6_is_the_same_float_as_round_to_6_places(x: float) -> None:
    assert _bits(round6(x)) == _bits(round(x, 6))


@given(st.integers(0, 10**6), st.sampled_from([0.5, 0.4999999, 0.5000001, 0.0]))
def test_round6_matches_round_next_to_a_rounding_tie(units: int, part: float) -> None:
    x = (units + part) / 1e6
    assert _bits(round6(x)) == _bits(round(x, 6))
    assert _bits(round6(-x)) == _bits(round(-x, 6))


def _bits(x: float) -> bytes:
    """The float's bytes: tells -0.0 from 0.0, and a NaN equals itself."""
    return struct.pack("<d", x)
