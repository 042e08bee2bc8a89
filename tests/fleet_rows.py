"""Rows for API and service tests: a free local backend and priced cloud ones."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from routing.models import Backend, BackendModel, Budget, PrivacyZone, TrafficPolicy
from routing.services.config import config_save


def add_backend(
    name: str, zone: str | None, tier: int, offers: list[dict[str, Any]], **fields: Any
) -> Backend:
    backend = Backend(
        name=name,
        kind=fields.pop("kind", "vllm"),
        base_url=f"http://127.0.0.1:9/{name}",
        privacy_zone=PrivacyZone.objects.get(name=zone) if zone else None,
        capability_tier=tier,
        **fields,
    )
    config_save(instance=backend, actor="test")
    for offer in offers:
        config_save(instance=BackendModel(backend=backend, **offer), actor="test")
    return backend


def priced(name: str, cost_in: str, cost_out: str, **caps: Any) -> dict[str, Any]:
    return {
        "name": name,
        "input_cost_per_1k": Decimal(cost_in),
        "output_cost_per_1k": Decimal(cost_out),
        "context_window": 128000,
        **caps,
    }


def make_fleet() -> dict[str, Backend]:
    """local-gpu (private, free, tier 3), cloud-llama and cloud-gpt (priced, tier 5)."""
    return {
        "local-gpu": add_backend(
            "local-gpu",
            "local",
            3,
            [priced("llama3.1:8b", "0", "0", tools=True)],
            priority=40,
        ),
        "cloud-llama": add_backend(
            "cloud-llama",
            "cloud",
            5,
            [priced("llama3.1:8b", "0.001", "0.002")],
            priority=10,
        ),
        "cloud-gpt": add_backend(
            "cloud-gpt",
            "cloud",
            5,
            [
                priced(
                    "gpt-4o", "0.0025", "0.01", vision=True, tools=True, json_mode=True
                )
            ],
        ),
    }


def set_budget(limit: str | None, **fields: Any) -> Budget:
    budget = Budget.objects.get(name="global")
    budget.monthly_limit_usd = Decimal(limit) if limit is not None else None
    for key, value in fields.items():
        setattr(budget, key, value)
    config_save(instance=budget, actor="test")
    return budget


def add_policy(name: str, pattern: str, **fields: Any) -> TrafficPolicy:
    policy = TrafficPolicy(name=name, model_pattern=pattern, **fields)
    config_save(instance=policy, actor="test")
    return policy


def chat(model: str, text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}
