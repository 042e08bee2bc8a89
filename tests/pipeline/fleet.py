"""Builders for pipeline tests: fleets, configs, requests (plain dataclasses)."""

from __future__ import annotations

from datetime import date
from typing import Any

from routing.pipeline import (
    PipelineSettings,
    RoutingContext,
    RoutingRequest,
    default_pipeline,
)
from routing.pipeline.rules import parse_privacy
from routing.pipeline.types import (
    EVERYTHING,
    BackendSnapshot,
    BudgetScope,
    BudgetSnapshot,
    ConfigSnapshot,
    HardLimitAction,
    Health,
    ModelOffer,
    PolicySnapshot,
    TierMode,
)

TODAY = date(2026, 11, 15)
PERIOD_END = date(2026, 12, 1)
ZONES = {"local": True, "cloud": False, "eu-private": True}


def offer(model: str = "llama3", **kwargs: Any) -> ModelOffer:
    """A model offer with sensible defaults."""
    kwargs.setdefault("context_window", 8192)
    return ModelOffer(name=model, **kwargs)


def backend(
    name: str,
    *,
    zone: str | None = "local",
    models: tuple[ModelOffer, ...] | None = None,
    **kwargs: Any,
) -> BackendSnapshot:
    """A backend; ``zone_private`` follows ``ZONES`` unless given."""
    offers = models if models is not None else (offer(),)
    kwargs.setdefault("zone_private", ZONES.get(zone, False) if zone else False)
    kwargs.setdefault("health", Health.HEALTHY)
    return BackendSnapshot(
        name=name,
        privacy_zone=zone,
        base_url=f"http://{name}:8000",
        models={o.name: o for o in offers},
        **kwargs,
    )


def local(name: str, **kwargs: Any) -> BackendSnapshot:
    """A free backend in the private ``local`` zone."""
    return backend(name, zone="local", **kwargs)


def cloud(name: str, *, price: float = 0.01, model: str = "llama3", **kwargs: Any):
    """A priced backend in the non-private ``cloud`` zone."""
    kwargs.setdefault(
        "models",
        (offer(model, input_cost_per_1k=price, output_cost_per_1k=price),),
    )
    return backend(name, zone="cloud", **kwargs)


def config(
    *backends: BackendSnapshot,
    policies: tuple[PolicySnapshot, ...] = (),
    aliases: dict[str, str] | None = None,
    fallbacks: dict[str, tuple[str, ...]] | None = None,
    version: int = 1,
) -> ConfigSnapshot:
    """A config snapshot."""
    return ConfigSnapshot(
        version=version,
        backends=tuple(backends),
        zones=ZONES,
        aliases=aliases or {},
        fallbacks=fallbacks or {},
        policies=tuple(sorted(policies, key=lambda p: (p.order, p.name))),
    )


def budget(
    limit: float | None = 100.0,
    *,
    spent: float = 0.0,
    reserved: float = 0.0,
    action: HardLimitAction = HardLimitAction.BLOCK_CLOUD,
    soft: int = 75,
    name: str = "global",
    scope: BudgetScope = EVERYTHING,
) -> BudgetSnapshot:
    """A budget in the period ending on ``PERIOD_END``."""
    return BudgetSnapshot(
        scope=scope,
        name=name,
        monthly_limit_usd=limit,
        soft_limit_percent=soft,
        hard_limit_action=action,
        period_start=date(2026, 11, 1),
        period_end=PERIOD_END,
        spent_usd=spent,
        reserved_usd=reserved,
    )


def context(cfg: ConfigSnapshot, *budgets: BudgetSnapshot) -> RoutingContext:
    """A routing context."""
    return RoutingContext(config=cfg, budgets=tuple(budgets))


def request(
    model: str = "llama3",
    *,
    text: str = "hello",
    privacy: str | None = None,
    min_tier: int | None = None,
    tier_mode: TierMode | None = None,
    max_cost_usd: float | None = None,
    source: str = "body",
    **body: Any,
) -> RoutingRequest:
    """A chat request with one user message."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
    }
    payload.update(body)
    sources = {
        key: source
        for key, value in (
            ("privacy", privacy),
            ("min_tier", min_tier),
            ("tier_mode", tier_mode),
            ("max_cost_usd", max_cost_usd),
        )
        if value is not None
    }
    return RoutingRequest(
        model=model,
        body=payload,
        privacy=parse_privacy(privacy) if privacy else None,
        min_tier=min_tier,
        tier_mode=tier_mode,
        max_cost_usd=max_cost_usd,
        sources=sources,
    )


def route(
    cfg: ConfigSnapshot, req: RoutingRequest, *budgets: BudgetSnapshot, **kw: Any
):
    """Route with a default pipeline (settings from ``kw``)."""
    pipeline = default_pipeline(PipelineSettings(**kw))
    return pipeline.route(req, context(cfg, *budgets))
