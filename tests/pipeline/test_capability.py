"""capability: tiers, vision/tools/json mode, context windows."""

from __future__ import annotations

from routing.pipeline.types import Outcome, PolicySnapshot, TierMode

from .fleet import config, local, offer, request, route


def test_strict_tier_excludes_every_backend_below_the_required_tier() -> None:
    cfg = config(local("t1", priority=0), local("t3", capability_tier=3, priority=99))
    result = route(cfg, request(min_tier=3))
    assert result.backend_name == "t3"
    assert (
        "below the required tier 3" in result.annotations["capability_excluded"]["t1"]
    )


def test_strict_tier_rejects_when_nothing_meets_it() -> None:
    result = route(config(local("t2", capability_tier=2)), request(min_tier=4))
    assert result.outcome is Outcome.REJECT


def test_flexible_tier_keeps_the_best_lower_tier_with_a_warning() -> None:
    cfg = config(
        local("t1"), local("t2", capability_tier=2), local("t2b", capability_tier=2)
    )
    result = route(cfg, request(min_tier=4, tier_mode=TierMode.FLEXIBLE))
    assert result.backend_name in {"t2", "t2b"}
    assert "t1" in result.annotations["capability_excluded"]
    assert result.annotations["tier_used"] == 2
    assert any("tier 4" in w and "tier 2" in w for w in result.warnings)


def test_flexible_tier_without_downgrade_need_adds_no_warning() -> None:
    cfg = config(local("t1"), local("t4", capability_tier=4))
    result = route(cfg, request(min_tier=4, tier_mode=TierMode.FLEXIBLE))
    assert result.backend_name == "t4"
    assert result.warnings == ()


def test_a_policy_forbidding_fallback_keeps_flexible_requests_strict() -> None:
    cfg = config(
        local("t1"),
        policies=(PolicySnapshot("gold", "*", min_tier=3, fallback_allowed=False),),
    )
    result = route(cfg, request(tier_mode=TierMode.FLEXIBLE))
    assert result.outcome is Outcome.REJECT
    assert result.annotations["tier_mode"] == "strict"


def test_missing_vision_tools_or_json_mode_excludes_a_backend() -> None:
    cfg = config(
        local("plain"),
        local("full", models=(offer(vision=True, tools=True, json_mode=True),)),
    )
    body = {
        "messages": [{"role": "user", "content": [{"type": "image_url"}]}],
        "tools": [{"type": "function"}],
        "response_format": {"type": "json_object"},
    }
    from .fleet import RoutingRequest, context, default_pipeline

    result = default_pipeline().route(RoutingRequest("llama3", body), context(cfg))
    assert result.backend_name == "full"
    reason = result.annotations["capability_excluded"]["plain"]
    assert "vision, tools, json_mode" in reason


def test_a_context_window_below_the_estimated_tokens_excludes_a_backend() -> None:
    cfg = config(
        local("small", models=(offer(context_window=1000),)),
        local("big", models=(offer(context_window=100_000),), priority=99),
    )
    result = route(cfg, request(text="x" * 4000, max_tokens=100))
    assert result.backend_name == "big"
    assert "context window 1000" in result.annotations["capability_excluded"]["small"]
