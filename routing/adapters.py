"""The only place where database rows become pipeline inputs.

``config_snapshot()`` is cached per process and rebuilt only when the config
version or the probed-state version changes, or after ``SNAPSHOT_MAX_AGE_S``
(so load and latency figures stay fresh): one cheap query per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from django.conf import settings

from routing.models import (
    Alias,
    Backend,
    Budget,
    FallbackChain,
    PrivacyZone,
    TrafficPolicy,
)
from routing.pipeline import (
    CounterStore,
    PipelineSettings,
    ReconcilerPipeline,
    default_pipeline,
    load_reconciler,
)
from routing.pipeline.scorers import parse_scorers
from routing.pipeline.types import (
    BackendKind,
    BackendSnapshot,
    BudgetSnapshot,
    ConfigSnapshot,
    HardLimitAction,
    Health,
    ModelOffer,
    PolicySnapshot,
    Strategy,
)
from routing.selectors import backend_list, routing_state
from routing.shared_counters import SharedCounterStore

SNAPSHOT_MAX_AGE_S = 5.0


def backend_to_snapshot(backend: Backend) -> BackendSnapshot:
    """A backend row (with zone and models prefetched) as the pipeline sees it."""
    zone = backend.privacy_zone
    offers = {
        offer.name: ModelOffer(
            name=offer.name,
            context_window=offer.context_window,
            vision=offer.vision,
            tools=offer.tools,
            json_mode=offer.json_mode,
            input_cost_per_1k=float(offer.input_cost_per_1k),
            output_cost_per_1k=float(offer.output_cost_per_1k),
        )
        for offer in backend.models.all()
    }
    return BackendSnapshot(
        name=backend.name,
        kind=BackendKind(backend.kind),
        base_url=backend.base_url,
        privacy_zone=zone.name if zone else None,
        zone_private=bool(zone and zone.private),
        capability_tier=backend.capability_tier,
        priority=backend.priority,
        enabled=backend.enabled,
        health=Health(backend.health),
        health_reason=backend.health_reason,
        loading_eta_ms=backend.loading_eta_ms,
        pending_requests=backend.pending_requests,
        max_concurrency=backend.max_concurrency,
        latency_ema_ms=backend.latency_ema_ms,
        error_rate=backend.error_rate,
        models=MappingProxyType(offers),
    )


def policy_to_snapshot(policy: TrafficPolicy) -> PolicySnapshot:
    cap = policy.max_cost_per_request_usd
    return PolicySnapshot(
        name=policy.name,
        model_pattern=policy.model_pattern,
        order=policy.order,
        privacy=policy.privacy,
        min_tier=policy.min_tier,
        fallback_allowed=policy.fallback_allowed,
        max_cost_per_request_usd=float(cap) if cap is not None else None,
    )


def build_config_snapshot(version: int) -> ConfigSnapshot:
    """Read every configuration table once."""
    policies = sorted(
        (policy_to_snapshot(p) for p in TrafficPolicy.objects.all()),
        key=lambda p: (p.order, p.name),
    )
    return ConfigSnapshot(
        version=version,
        backends=tuple(backend_to_snapshot(b) for b in backend_list()),
        zones=MappingProxyType(
            dict(PrivacyZone.objects.values_list("name", "private"))
        ),
        aliases=MappingProxyType(dict(Alias.objects.values_list("name", "target"))),
        fallbacks=MappingProxyType(
            {c.model: tuple(c.fallbacks) for c in FallbackChain.objects.all()}
        ),
        policies=tuple(policies),
    )


@dataclass
class _Cached:
    key: tuple[str, int, int] | None = None
    built_at: float = 0.0
    snapshot: ConfigSnapshot | None = None


_cache = _Cached()
_cache_lock = threading.Lock()


def config_snapshot(versions: tuple[int, int] | None = None) -> ConfigSnapshot:
    """The current configuration, shared across requests of this process.

    ``versions`` (config, probed state) may be passed when already read.

    Inside a transaction it is built fresh and not cached: what it read might
    still be rolled back.
    """
    from django.db import connection

    if versions is None:
        state_now = routing_state()
        versions = (state_now.version, state_now.state_version)
    version, state = versions
    if connection.in_atomic_block:
        # Uncommitted rows could be rolled back under this version number.
        return build_config_snapshot(version)
    key = (connection.settings_dict["NAME"], version, state)
    cached = _cache
    fresh = time.monotonic() - cached.built_at < SNAPSHOT_MAX_AGE_S
    if cached.snapshot is not None and cached.key == key and fresh:
        return cached.snapshot
    with _cache_lock:
        snapshot = build_config_snapshot(version)
        _cache.key, _cache.built_at, _cache.snapshot = key, time.monotonic(), snapshot
    return snapshot


def last_config_snapshot() -> ConfigSnapshot:
    """The snapshot this process routed on last (read now if there is none)."""
    from django.db import connection

    cached = _cache.snapshot
    if cached is None or connection.in_atomic_block:
        return config_snapshot()
    return cached


def config_snapshot_invalidate() -> None:
    """Forget the cached snapshot (tests, and after bulk changes)."""
    with _cache_lock:
        _cache.key, _cache.snapshot = None, None


def budget_to_snapshot(budget: Budget) -> BudgetSnapshot:
    limit = budget.monthly_limit_usd
    return BudgetSnapshot(
        name=budget.name,
        monthly_limit_usd=float(limit) if limit is not None else None,
        soft_limit_percent=budget.soft_limit_percent,
        hard_limit_action=HardLimitAction(budget.hard_limit_action),
        reset_day=budget.reset_day,
        period_start=budget.period_start,
        period_end=budget.period_end,
        spent_usd=float(budget.spent_usd),
        reserved_usd=float(budget.reserved_usd),
        scope=budget.scope_snapshot(),
    )


def budget_snapshots(
    budgets: Iterable[Budget] | None = None,
) -> tuple[BudgetSnapshot, ...]:
    """Every budget's current state (one query)."""
    rows = budgets if budgets is not None else Budget.objects.order_by("pk")
    return tuple(budget_to_snapshot(b) for b in rows)


def pipeline_settings(
    *, counter_store: CounterStore | None = None, random_seed: int | None = None
) -> PipelineSettings:
    """Strategy and scorers from ``NEXUS_SELECTION_STRATEGY`` and ``NEXUS_SCORERS``
    (raises ``SettingsError`` naming a bad scorer entry); round-robin positions
    in the shared state, so the rotation spans every process and node, unless
    another ``counter_store`` is given."""
    return PipelineSettings(
        strategy=Strategy(settings.NEXUS_SELECTION_STRATEGY),
        scorers=parse_scorers(settings.NEXUS_SCORERS),
        random_seed=random_seed,
        counter_store=counter_store or SharedCounterStore(),
    )


def build_pipeline(
    *, counter_store: CounterStore | None = None, random_seed: int | None = None
) -> ReconcilerPipeline:
    """The default pipeline plus ``NEXUS_EXTRA_RECONCILERS`` (before selection).

    ``counter_store`` and ``random_seed`` go to ``pipeline_settings`` (sample
    decisions turn a round robin of their own, reproducibly).
    Raises ``PipelineConfigError`` for an unimportable path, a duplicate name or a
    pipeline whose last stage is not ``selection``, and ``SettingsError`` for a
    bad ``NEXUS_SCORERS``.
    """
    extra = [load_reconciler(path) for path in settings.NEXUS_EXTRA_RECONCILERS]
    chosen = pipeline_settings(counter_store=counter_store, random_seed=random_seed)
    return default_pipeline(chosen, extra=extra)


_pipeline: ReconcilerPipeline | None = None


def shared_pipeline() -> ReconcilerPipeline:
    """One pipeline per process (its round-robin positions are in the shared
    state, see ``routing.shared_counters``)."""
    global _pipeline
    if _pipeline is None:
        _pipeline = build_pipeline()
    return _pipeline


def shared_pipeline_reset() -> None:
    """Build the pipeline again on next use (after changing its settings)."""
    global _pipeline
    _pipeline = None
