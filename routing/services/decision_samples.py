"""Sample decisions in bulk, for load tests and benchmarks of the explorer.

The rows have the shape ``route_request`` records (columns, trace, annotations,
exclusion rows) with a realistic mix of outcomes, models, backends and
exclusion reasons over the last ``days`` days. They are written with
``bulk_create`` in batches; nothing else (ledger, budgets) is touched.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from routing.models import DecisionExclusion, RoutingDecision
from routing.services.decisions import exclusion_rows

MODELS = [
    ("gpt-4o", "openai", 0.0125, 30),
    ("gpt-4o-mini", "openai", 0.0008, 15),
    ("claude-sonnet-4-5", "anthropic", 0.018, 10),
    ("llama3.1:8b", "vllm-a100", 0.0, 25),
    ("llama3.1:8b", "ollama-workstation", 0.0, 8),
    ("qwen2.5:14b", "ollama-rack", 0.0, 7),
    ("llama3.1:70b", "vllm-a100", 0.0, 5),
]
ALIASES = {"llama3.1:8b": "fast", "gpt-4o": "smart"}
EXCLUSIONS = {
    "privacy": (
        "is in zone 'cloud', which is not private; the request is restricted (header)",
        "Serve '{model}' on a backend in a private zone.",
    ),
    "budget": (
        "estimated cost $0.0125 would take the budget past its limit (block_cloud)",
        "Raise the monthly limit or wait for the reset.",
    ),
    "capability": (
        "tier 2 is below the required tier 4",
        "Serve '{model}' on a tier 4+ backend, or allow flexible tier mode.",
    ),
    "request_analyzer": (
        "is unhealthy",
        "Check the backend's health probe.",
    ),
}
RECONCILERS = ["request_analyzer", "privacy", "budget", "capability", "selection"]
OTHER_BACKENDS = [
    "ollama-workstation",
    "ollama-rack",
    "anthropic",
    "openai",
    "vllm-a100",
]


def _trace(
    model: str, chosen: str | None, excluded: dict[str, str], rng: random.Random
) -> list[dict[str, Any]]:
    start = [b for b in OTHER_BACKENDS if b != chosen][:3]
    if chosen:
        start = [chosen, *start]
    candidates = list(start)
    trace = []
    for name in RECONCILERS:
        before = list(candidates)
        gone = [b for b, by in excluded.items() if by == name]
        candidates = [c for c in candidates if c not in gone]
        reason, action = EXCLUSIONS.get(name, ("", ""))
        trace.append(
            {
                "reconciler": name,
                "error_policy": "fail_open"
                if name in ("budget", "capability")
                else "fail_closed",
                "model": model,
                "candidates_before": before,
                "candidates_after": list(candidates),
                "excluded": [
                    {
                        "backend": b,
                        "reason": reason,
                        "suggested_action": action.format(model=model),
                    }
                    for b in gone
                ],
                "duration_us": round(rng.uniform(3, 120), 1),
                "error": None,
            }
        )
    return trace


def _one(
    rng: random.Random, created_at: datetime, config_version: int
) -> tuple[RoutingDecision, list[DecisionExclusion]]:
    model, backend, cost, _ = rng.choices(MODELS, weights=[m[3] for m in MODELS])[0]
    roll = rng.random()
    outcome = "route" if roll < 0.82 else "queue" if roll < 0.87 else "reject"
    excluded: dict[str, str] = {}
    others = [b for b in OTHER_BACKENDS if b != backend]
    if outcome == "reject":
        excluded = {
            b: rng.choice(["privacy", "budget", "capability"]) for b in others[:3]
        }
        excluded[backend] = rng.choice(["privacy", "budget", "capability"])
    elif rng.random() < 0.35:
        excluded = {rng.choice(others): rng.choice(list(EXCLUSIONS))}
    chosen = None if outcome == "reject" else backend
    scores = {} if chosen is None else {chosen: round(rng.uniform(0.6, 0.95), 4)}
    requested = ALIASES.get(model, model) if rng.random() < 0.2 else model
    tokens_in = rng.randint(20, 4000)
    payload_annotations = {
        "privacy_constraint": "restricted"
        if "privacy" in excluded.values()
        else "unrestricted",
        "budget_status": "hard_limit" if "budget" in excluded.values() else "normal",
        "required_tier": 4 if "capability" in excluded.values() else None,
        "tier_mode": "strict",
        "estimated_cost_usd": {chosen: cost} if chosen else {},
        "scores": scores,
        "score_breakdown": {
            name: {"priority": 0.8, "load": 1.0, "latency": 0.5, "errors": 1.0}
            for name in scores
        },
        "strategy": "smart",
    }
    decision_id = uuid.uuid4()
    details: dict[str, Any] = {
        "matched_policies": [],
        "models_tried": [model],
        "backend": {"name": chosen} if chosen else None,
    }
    if outcome == "reject":
        details["error"] = {
            "type": "no_viable_backend",
            "message": f"No viable backend for model '{requested}'.",
            "rejections": [],
            "suggested_actions": [],
        }
    decision = RoutingDecision(
        id=decision_id,
        request_id=uuid.UUID(int=rng.getrandbits(128)).hex,
        created_at=created_at,
        outcome=outcome,
        error_type="no_viable_backend" if outcome == "reject" else "",
        requested_model=requested,
        model=model,
        backend_name=chosen or "",
        score=scores.get(chosen) if chosen else None,
        estimated_cost_usd=Decimal(str(cost)) if chosen else None,
        reason=f"smart: best of {len(scores) or 1} candidates" if chosen else "",
        pipeline_duration_us=round(rng.uniform(80, 600), 1),
        client="sample",
        config_version=config_version,
        requirements={
            "vision": False,
            "tools": rng.random() < 0.3,
            "json_mode": rng.random() < 0.2,
            "estimated_input_tokens": tokens_in,
            "estimated_output_tokens": 256,
        },
        constraints={
            "privacy": {
                "value": payload_annotations["privacy_constraint"],
                "sources": ["header"],
            },
            "min_tier": {"value": payload_annotations["required_tier"], "sources": []},
            "tier_mode": {"value": "strict", "sources": ["default"]},
            "max_cost_usd": {"value": None, "sources": []},
        },
        annotations=payload_annotations,
        trace=_trace(model, chosen, excluded, rng),
        warnings=[],
        details=details,
    )
    counts: dict[str, int] = {}
    for by in excluded.values():
        counts[by] = counts.get(by, 0) + 1
    exclusions = exclusion_rows(
        decision_id=decision_id, counts=counts, created_at=created_at
    )
    return decision, exclusions


def decision_samples_generate(
    *,
    count: int,
    days: int = 30,
    batch_size: int = 5000,
    seed: int = 1,
    versions: int = 40,
    progress: Any = None,
) -> int:
    """Write ``count`` sample decisions spread over the last ``days`` days."""
    rng = random.Random(seed)
    now = timezone.now()
    span = timedelta(days=days).total_seconds()
    written = 0
    while written < count:
        size = min(batch_size, count - written)
        decisions: list[RoutingDecision] = []
        exclusions: list[DecisionExclusion] = []
        for i in range(size):
            position = (written + i) / max(count, 1)  # oldest first
            created_at = now - timedelta(seconds=span * (1 - position))
            version = 1 + int(position * versions)
            decision, excluded = _one(rng, created_at, version)
            decisions.append(decision)
            exclusions.extend(excluded)
        with transaction.atomic():
            RoutingDecision.objects.bulk_create(decisions)
            DecisionExclusion.objects.bulk_create(exclusions)
        written += size
        if progress is not None:
            progress(written)
    return written
