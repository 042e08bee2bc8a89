"""The demo fleet: a realistic mix of local and cloud backends, loaded idempotently.

Cloud prices are the providers' published list prices per 1k tokens (USD) for
these models; local hardware costs nothing per token.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Budget,
    FallbackChain,
    PrivacyZone,
    TrafficPolicy,
)
from routing.services.config import config_save

D = Decimal

LLAMA_8B = {
    "name": "llama3.1:8b",
    "context_window": 131072,
    "tools": True,
    "json_mode": True,
}
QWEN_14B = {
    "name": "qwen2.5:14b",
    "context_window": 32768,
    "tools": True,
    "json_mode": True,
}
LLAVA = {"name": "llava:13b", "context_window": 4096, "vision": True}
LLAMA_70B = {
    "name": "llama3.1:70b",
    "context_window": 131072,
    "tools": True,
    "json_mode": True,
}

BACKENDS: list[dict[str, Any]] = [
    {
        "name": "ollama-workstation",
        "kind": "ollama",
        "zone": "local",
        "tier": 2,
        "priority": 20,
        "max_concurrency": 2,
        "base_url": "http://127.0.0.1:18434",
        "models": [LLAMA_8B, LLAVA],
    },
    {
        "name": "ollama-rack",
        "kind": "ollama",
        "zone": "local",
        "tier": 3,
        "priority": 30,
        "max_concurrency": 4,
        "base_url": "http://127.0.0.1:18435",
        "models": [LLAMA_8B, QWEN_14B],
    },
    {
        "name": "vllm-a100",
        "kind": "vllm",
        "zone": "local",
        "tier": 4,
        "priority": 10,
        "max_concurrency": 16,
        "base_url": "http://127.0.0.1:18000",
        "models": [LLAMA_70B, LLAMA_8B],
    },
    {
        "name": "openai",
        "kind": "openai",
        "zone": "cloud",
        "tier": 5,
        "priority": 60,
        "max_concurrency": 64,
        "base_url": "https://api.openai.com/v1",
        "models": [
            {
                "name": "gpt-4o",
                "context_window": 128000,
                "vision": True,
                "tools": True,
                "json_mode": True,
                "input_cost_per_1k": D("0.0025"),
                "output_cost_per_1k": D("0.01"),
            },
            {
                "name": "gpt-4o-mini",
                "context_window": 128000,
                "vision": True,
                "tools": True,
                "json_mode": True,
                "input_cost_per_1k": D("0.00015"),
                "output_cost_per_1k": D("0.0006"),
            },
        ],
    },
    {
        "name": "anthropic",
        "kind": "anthropic",
        "zone": "cloud",
        "tier": 5,
        "priority": 60,
        "max_concurrency": 64,
        "base_url": "https://api.anthropic.com/v1",
        "models": [
            {
                "name": "claude-sonnet-4-5",
                "context_window": 200000,
                "vision": True,
                "tools": True,
                "json_mode": True,
                "input_cost_per_1k": D("0.003"),
                "output_cost_per_1k": D("0.015"),
            },
            {
                "name": "claude-haiku-4-5",
                "context_window": 200000,
                "vision": True,
                "tools": True,
                "json_mode": True,
                "input_cost_per_1k": D("0.001"),
                "output_cost_per_1k": D("0.005"),
            },
        ],
    },
]

ALIASES = {"fast": "llama3.1:8b", "smart": "gpt-4o", "internal-chat": "fast"}
FALLBACKS = {"gpt-4o": ["claude-sonnet-4-5", "llama3.1:70b"]}
POLICIES: list[dict[str, Any]] = [
    {
        "name": "internal-stays-local",
        "model_pattern": "internal-*",
        "order": 10,
        "privacy": "restricted",
        "fallback_allowed": False,
        "description": "Internal assistants see customer data: private zones only.",
    },
    {
        "name": "claude-needs-tier-4",
        "model_pattern": "claude-*",
        "order": 20,
        "min_tier": 4,
        "max_cost_per_request_usd": D("0.50"),
        "description": "Claude traffic needs tier 4+ and at most $0.50 a request.",
    },
]
BUDGET = {
    "monthly_limit_usd": D("200"),
    "soft_limit_percent": 75,
    "hard_limit_action": "block_cloud",
    "reset_day": 1,
}


def _upsert(
    model: type[Any], lookup: dict[str, Any], values: dict[str, Any], actor: str
) -> Any:
    instance = model.objects.filter(**lookup).first() or model(**lookup)
    for field, value in values.items():
        setattr(instance, field, value)
    config_save(instance=instance, actor=actor)
    return instance


@transaction.atomic
def demo_fleet_load(*, actor: str = "system:demo") -> int:
    """Create or update the demo fleet; return the number of backends."""
    zones = {zone.name: zone for zone in PrivacyZone.objects.all()}
    for spec in BACKENDS:
        backend = _upsert(
            Backend,
            {"name": spec["name"]},
            {
                "kind": spec["kind"],
                "base_url": spec["base_url"],
                "privacy_zone": zones[spec["zone"]],
                "capability_tier": spec["tier"],
                "priority": spec["priority"],
                "max_concurrency": spec["max_concurrency"],
            },
            actor,
        )
        for offer in spec["models"]:
            values = {key: value for key, value in offer.items() if key != "name"}
            _upsert(
                BackendModel, {"backend": backend, "name": offer["name"]}, values, actor
            )
    for name, target in ALIASES.items():
        _upsert(Alias, {"name": name}, {"target": target}, actor)
    for model, fallbacks in FALLBACKS.items():
        _upsert(FallbackChain, {"model": model}, {"fallbacks": fallbacks}, actor)
    for spec in POLICIES:
        values = {key: value for key, value in spec.items() if key != "name"}
        _upsert(TrafficPolicy, {"name": spec["name"]}, values, actor)
    _upsert(Budget, {"name": "global"}, BUDGET, actor)
    return len(BACKENDS)
