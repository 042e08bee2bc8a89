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
#: The demo's API key (``manage.py demo_credentials``) and login: the team budget
#: governs what they ask for.
DEMO_CLIENTS = ["demo-client", "operator"]
#: Scoped budgets beside ``global``: all cloud spend, and the demo team's.
SCOPED_BUDGETS: dict[str, dict[str, Any]] = {
    "cloud": {
        "monthly_limit_usd": D("150"),
        "soft_limit_percent": 80,
        "hard_limit_action": "block_cloud",
        "reset_day": 1,
        "scope": {"zones": ["cloud"]},
        "alert_thresholds": [50, 80, 100],
    },
    "demo-team": {
        "monthly_limit_usd": D("40"),
        "soft_limit_percent": 75,
        "hard_limit_action": "warn",
        "reset_day": 1,
        "scope": {"clients": DEMO_CLIENTS},
        "alert_thresholds": [80, 100],
    },
}
#: Recorded demo traffic: (client, model, input tokens, output tokens) per day.
TRAFFIC_DAYS = 14
TRAFFIC_PREFIX = "demo-traffic-"
TRAFFIC_MIX: list[tuple[str, str, int, int]] = [
    ("demo-client", "gpt-4o", 24_000, 900),
    ("demo-client", "gpt-4o-mini", 8_000, 600),
    ("demo-client", "claude-haiku-4-5", 12_000, 700),
    ("demo-client", "fast", 2_000, 300),
    ("nightly-batch", "gpt-4o-mini", 30_000, 1_200),
    ("nightly-batch", "llama3.1:70b", 16_000, 800),
    ("operator", "claude-sonnet-4-5", 6_000, 500),
]


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
    for name, values in SCOPED_BUDGETS.items():
        _upsert(Budget, {"name": name}, values, actor)
    return len(BACKENDS)


def demo_traffic_record(*, seed: int = 7) -> int:
    """Route and settle a few requests a day for the last ``TRAFFIC_DAYS`` days of
    the current period, once (nothing when demo traffic exists); return how many.

    Every request goes through ``route_request`` and ``usage_record`` (the real
    cost from the backend's prices and tokens a little off the estimate, as an
    upstream's usage is), so budgets, ledger and the Spend page agree; then the
    decision, its usage and its ledger entries are dated back to their day.
    """
    import random
    from datetime import UTC, datetime, time, timedelta

    from django.utils import timezone

    from routing.models import LedgerEntry, RoutingDecision, UsageReport
    from routing.pipeline import RoutingRequest
    from routing.services.ledger import usage_record
    from routing.services.routing import route_request

    if RoutingDecision.objects.filter(request_id__startswith=TRAFFIC_PREFIX).exists():
        return 0
    rng = random.Random(seed)
    today = timezone.now().date()
    period_start = Budget.objects.get(name="global").period_start or today
    first = max(period_start, today - timedelta(days=TRAFFIC_DAYS - 1))
    recorded = 0
    for offset in range((today - first).days + 1):
        day = first + timedelta(days=offset)
        for client, model, tokens_in, tokens_out in TRAFFIC_MIX:
            for _ in range(rng.randint(1, 4)):
                outcome = route_request(
                    request=RoutingRequest(
                        model=model,
                        body={
                            "messages": [
                                {"role": "user", "content": "x" * tokens_in * 4}
                            ],
                            "max_tokens": tokens_out,
                        },
                    ),
                    request_id=f"{TRAFFIC_PREFIX}{recorded:04d}",
                    client=client,
                )
                recorded += 1
                if outcome.decision_id is None or outcome.result.outcome != "route":
                    continue
                usage_record(
                    decision_id=outcome.decision_id,
                    input_tokens=int(tokens_in * rng.uniform(0.85, 1.1)),
                    output_tokens=int(tokens_out * rng.uniform(0.3, 0.9)),
                    reporter=None,
                    source="upstream",
                )
                when = datetime.combine(
                    day, time(rng.randint(7, 20), rng.randint(0, 59)), tzinfo=UTC
                )
                if when > timezone.now():
                    continue
                RoutingDecision.objects.filter(pk=outcome.decision_id).update(
                    created_at=when
                )
                UsageReport.objects.filter(decision_id=outcome.decision_id).update(
                    created_at=when
                )
                LedgerEntry.objects.filter(decision_id=outcome.decision_id).update(
                    created_at=when
                )
    return recorded
