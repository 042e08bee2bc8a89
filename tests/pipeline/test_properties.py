"""Property tests over generated fleets, policies, budgets and requests."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.pipeline import RoutingIntent, default_pipeline
from routing.pipeline.index import index_for
from routing.pipeline.reconcilers.budget import BudgetReconciler
from routing.pipeline.reconcilers.capability import CapabilityReconciler
from routing.pipeline.reconcilers.privacy import PrivacyReconciler
from routing.pipeline.reconcilers.request_analyzer import RequestAnalyzer
from routing.pipeline.types import (
    BackendSnapshot,
    ConfigSnapshot,
    HardLimitAction,
    Health,
    ModelOffer,
    Outcome,
    PolicySnapshot,
    TierMode,
)

from .fleet import ZONES, budget, context, request

MODELS = ("llama3", "mistral", "phi")
PIPELINE = default_pipeline()

offers = st.builds(
    ModelOffer,
    name=st.sampled_from(MODELS),
    context_window=st.sampled_from((512, 4096, 100_000)),
    vision=st.booleans(),
    tools=st.booleans(),
    json_mode=st.booleans(),
    input_cost_per_1k=st.sampled_from((0.0, 0.0, 0.5, 3.0)),
    output_cost_per_1k=st.sampled_from((0.0, 1.0, 6.0)),
)


@st.composite
def backends(draw: Any, name: str) -> BackendSnapshot:
    zone = draw(st.sampled_from((None, *ZONES)))
    models = draw(st.lists(offers, min_size=1, max_size=3, unique_by=lambda o: o.name))
    return BackendSnapshot(
        name=name,
        privacy_zone=zone,
        zone_private=ZONES.get(zone, False) if zone else draw(st.booleans()),
        capability_tier=draw(st.integers(1, 5)),
        priority=draw(st.integers(0, 100)),
        enabled=draw(st.booleans() | st.just(True)),
        health=draw(st.sampled_from(list(Health))),
        loading_eta_ms=draw(st.none() | st.integers(0, 5000)),
        pending_requests=draw(st.integers(0, 8)),
        max_concurrency=draw(st.integers(1, 4)),
        latency_ema_ms=draw(st.none() | st.floats(0, 5000)),
        error_rate=draw(st.floats(0, 1)),
        models={o.name: o for o in models},
    )


policies = st.builds(
    PolicySnapshot,
    name=st.sampled_from(("p1", "p2", "p3")),
    model_pattern=st.sampled_from(("*", "llama*", "mis?ral", "phi", "fast")),
    order=st.integers(0, 3),
    privacy=st.sampled_from(("unrestricted", "restricted", "zone:eu-private")),
    min_tier=st.none() | st.integers(1, 5),
    fallback_allowed=st.booleans(),
    max_cost_per_request_usd=st.none() | st.sampled_from((0.001, 0.05, 1.0)),
)


@st.composite
def worlds(draw: Any) -> tuple[ConfigSnapshot, Any, Any]:
    count = draw(st.integers(0, 8))
    fleet = tuple(draw(backends(f"b{i}")) for i in range(count))
    pols = draw(st.lists(policies, max_size=3, unique_by=lambda p: p.name))
    aliases = draw(
        st.dictionaries(
            st.sampled_from(("fast", "smart")), st.sampled_from(MODELS), max_size=2
        )
    )
    fallbacks = draw(
        st.dictionaries(
            st.sampled_from(MODELS),
            st.lists(st.sampled_from(MODELS), max_size=2).map(tuple),
            max_size=3,
        )
    )
    cfg = ConfigSnapshot(
        version=1,
        backends=fleet,
        zones=ZONES,
        aliases=aliases,
        fallbacks=fallbacks,
        policies=tuple(sorted(pols, key=lambda p: (p.order, p.name))),
    )
    req = request(
        draw(st.sampled_from((*MODELS, "fast", "smart"))),
        text="x" * draw(st.integers(0, 3000)),
        privacy=draw(st.sampled_from((None, "unrestricted", "restricted"))),
        min_tier=draw(st.none() | st.integers(1, 5)),
        tier_mode=draw(st.none() | st.sampled_from(list(TierMode))),
        max_cost_usd=draw(st.none() | st.sampled_from((0.0001, 0.01, 1.0))),
        max_tokens=draw(st.integers(1, 4000)),
    )
    budgets = draw(
        st.lists(
            st.builds(
                budget,
                st.none() | st.sampled_from((1.0, 10.0)),
                spent=st.sampled_from((0.0, 5.0, 9.99, 20.0)),
                action=st.sampled_from(list(HardLimitAction)),
            ),
            max_size=2,
        )
    )
    return cfg, req, budgets


FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _chosen(result: Any) -> list[BackendSnapshot]:
    chosen = [result.backend] if result.backend is not None else []
    if result.fallback_backend:
        by_name = {b.name: b for b in result_config(result)}
        chosen.append(by_name[result.fallback_backend])
    return chosen


_CONFIGS: dict[int, ConfigSnapshot] = {}


def result_config(result: Any) -> tuple[BackendSnapshot, ...]:
    return _CONFIGS[id(result)].backends


def _route(world: tuple[ConfigSnapshot, Any, Any]) -> Any:
    cfg, req, budgets = world
    result = PIPELINE.route(req, context(cfg, *budgets))
    _CONFIGS.clear()
    _CONFIGS[id(result)] = cfg
    return result


@FAST
@given(worlds())
def test_candidates_and_excluded_stay_disjoint_and_only_shrink(world: Any) -> None:
    result = _route(world)
    for entry in result.trace:
        assert set(entry.candidates_after) <= set(entry.candidates_before) or (
            entry.reconciler == "request_analyzer"
        )
        assert not {r.backend for r in entry.excluded} & set(entry.candidates_after)
    in_trace = [r for entry in result.trace for r in entry.excluded]
    assert result.excluded_by == tuple(dict.fromkeys(r.reconciler for r in in_trace))
    seen: set[tuple[str, str]] = set()
    for rejection in result.rejections:
        key = (rejection.model, rejection.backend)
        assert key not in seen, "a backend was excluded twice in one attempt"
        seen.add(key)


@FAST
@given(worlds())
def test_no_restricted_request_ever_selects_a_non_private_backend(world: Any) -> None:
    cfg, req, budgets = world
    result = _route(world)
    restricted = req.privacy is not None and str(req.privacy) == "restricted"
    names = {req.model, *cfg.aliases, *cfg.aliases.values()}
    policy_restricted = {
        p.name for p in cfg.policies if p.privacy != "unrestricted"
    } & set(result.matched_policies)
    if restricted:
        for backend in _chosen(result):
            assert backend.privacy_zone is not None and backend.zone_private
    if policy_restricted:
        for backend in _chosen(result):
            assert backend.privacy_zone is not None and backend.zone_private
    assert names  # the generated world always names a model


@FAST
@given(worlds())
def test_strict_tier_never_selects_below_the_required_tier(world: Any) -> None:
    cfg, req, budgets = world
    result = _route(world)
    if result.constraints.tier_mode is TierMode.STRICT and req.min_tier is not None:
        for backend in _chosen(result):
            assert backend.capability_tier >= req.min_tier
    if result.constraints.min_tier and result.constraints.tier_mode is TierMode.STRICT:
        for backend in _chosen(result):
            assert backend.capability_tier >= result.constraints.min_tier


@FAST
@given(worlds())
def test_block_cloud_at_the_hard_limit_never_selects_a_priced_backend(
    world: Any,
) -> None:
    cfg, req, budgets = world
    result = _route(world)
    blocking = any(
        b.monthly_limit_usd is not None
        and b.spent_usd + b.reserved_usd >= b.monthly_limit_usd
        and b.hard_limit_action is not HardLimitAction.WARN
        for b in budgets
    )
    if blocking and result.outcome is not Outcome.REJECT:
        assert result.estimated_cost_usd == 0.0
        if result.fallback_backend:
            assert (
                result.annotations["estimated_cost_usd"][result.fallback_backend] == 0
            )


@FAST
@given(worlds())
def test_every_decision_is_plain_json(world: Any) -> None:
    import json

    json.dumps(_route(world).to_dict(), allow_nan=False)


@FAST
@given(worlds())
def test_running_a_filtering_reconciler_twice_changes_nothing(world: Any) -> None:
    cfg, req, budgets = world
    intent = RoutingIntent(req, context(cfg, *budgets), index_for(cfg))
    RequestAnalyzer().reconcile(intent)
    for reconciler in (PrivacyReconciler(), BudgetReconciler(), CapabilityReconciler()):
        intent.current_reconciler = reconciler.name
        reconciler.reconcile(intent)
        before = (
            dict(intent.candidates),
            intent.rejections,
            dict(intent.annotations),
            list(intent.warnings),
        )
        reconciler.reconcile(intent)
        after = (
            dict(intent.candidates),
            intent.rejections,
            dict(intent.annotations),
            list(intent.warnings),
        )
        assert before == after, reconciler.name
