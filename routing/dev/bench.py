"""Benchmark: ``python -m routing.dev.bench [--quick]``.

Routes one realistic request through the default pipeline at 5, 10, 50, 200
and 1000 backends with every constraint active (a restricted policy, a minimum
tier, a budget at its soft limit, mixed capabilities, full trace) and prints
p50/p99 in microseconds per reconciler (from the trace) and for the whole
``pipeline.route()``. Each size warms up, then runs for a bounded time.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import date

from routing.pipeline import RoutingContext, RoutingRequest, default_pipeline
from routing.pipeline.reconcilers import DEFAULT_ORDER
from routing.pipeline.rules import parse_privacy
from routing.pipeline.types import (
    BackendSnapshot,
    BudgetSnapshot,
    ConfigSnapshot,
    Health,
    ModelOffer,
    PolicySnapshot,
)
from routing.pipeline_build import describe

SIZES = (5, 10, 50, 200, 1000)
ZONES = {"local": True, "eu-private": True, "cloud": False}


def build_fleet(size: int, seed: int = 42) -> ConfigSnapshot:
    """A mixed fleet: ~60% private, tiers 1-5, mixed capabilities and prices."""
    rng = random.Random(seed)
    backends = []
    for i in range(size):
        zone = rng.choice(("local", "local", "eu-private", "cloud", "cloud", None))
        priced = zone in ("cloud", None)
        models = {
            "llama3": ModelOffer(
                "llama3",
                context_window=rng.choice((4096, 8192, 32768)),
                vision=rng.random() < 0.5,
                tools=rng.random() < 0.7,
                json_mode=rng.random() < 0.8,
                input_cost_per_1k=0.5 if priced else 0.0,
                output_cost_per_1k=1.5 if priced else 0.0,
            )
        }
        if i % 3 == 0:
            models["mistral"] = ModelOffer("mistral")
        backends.append(
            BackendSnapshot(
                name=f"backend-{i:04d}",
                base_url=f"http://10.0.{i // 250}.{i % 250}:8000",
                privacy_zone=zone,
                zone_private=ZONES.get(zone or "", False),
                capability_tier=rng.randint(1, 5),
                priority=rng.randint(0, 100),
                enabled=rng.random() > 0.05,
                health=rng.choice(
                    (Health.HEALTHY,) * 6
                    + (Health.UNKNOWN, Health.LOADING)
                    + (Health.UNHEALTHY,)
                ),
                loading_eta_ms=rng.choice((None, 1500)),
                pending_requests=rng.randint(0, 8),
                max_concurrency=rng.randint(1, 8),
                latency_ema_ms=rng.choice((None, rng.uniform(50, 3000))),
                error_rate=rng.random() * 0.2,
                models=models,
            )
        )
    return ConfigSnapshot(
        version=size,
        backends=tuple(backends),
        zones=ZONES,
        aliases={"assistant": "llama3"},
        policies=(
            PolicySnapshot("other", "gpt-*", order=1),
            PolicySnapshot("confidential", "assistant", order=5, privacy="restricted"),
        ),
    )


REQUEST = RoutingRequest(
    model="assistant",
    body={
        "model": "assistant",
        "messages": [
            {"role": "system", "content": "You are helpful. " * 20},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Summarise this document. " * 40},
                ],
            },
        ],
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
        "max_tokens": 512,
    },
    privacy=parse_privacy("restricted"),
    min_tier=3,
    sources={"privacy": "header", "min_tier": "body"},
)

BUDGET = BudgetSnapshot(
    "global",
    monthly_limit_usd=100.0,
    period_end=date(2026, 12, 1),
    spent_usd=70.0,
    reserved_usd=8.0,
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(sizes: tuple[int, ...] = SIZES, seconds: float = 2.0) -> list[list[str]]:
    """Benchmark each size for about ``seconds``; return table rows."""
    pipeline = default_pipeline()
    rows = []
    for size in sizes:
        context = RoutingContext(build_fleet(size), (BUDGET,))
        for _ in range(50):
            pipeline.route(REQUEST, context)
        totals: list[float] = []
        stages: dict[str, list[float]] = {name: [] for name in DEFAULT_ORDER}
        deadline = time.perf_counter() + seconds
        perf = time.perf_counter_ns
        outcome = ""
        while time.perf_counter() < deadline or len(totals) < 200:
            start = perf()
            result = pipeline.route(REQUEST, context)
            totals.append((perf() - start) / 1000.0)
            for entry in result.trace:
                stages[entry.reconciler].append(entry.duration_us)
            outcome = f"{result.outcome.value}:{result.backend_name}"
        row = [str(size), str(len(totals))]
        for name in DEFAULT_ORDER:
            row.append(f"{_pct(stages[name], 0.5):.1f}/{_pct(stages[name], 0.99):.1f}")
        row.append(f"{_pct(totals, 0.5):.1f}")
        row.append(f"{_pct(totals, 0.99):.1f}")
        row.append(f"{statistics.fmean(totals):.1f}")
        row.append(outcome)
        rows.append(row)
    return rows


def main(argv: list[str]) -> None:
    """Print the table."""
    seconds = 0.5 if "--quick" in argv else 2.0
    header = [
        "backends",
        "runs",
        *(f"{n} p50/p99" for n in DEFAULT_ORDER),
        "route p50",
        "route p99",
        "mean",
        "decision",
    ]
    rows = run(seconds=seconds)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(
        "Nexus routing pipeline, microseconds (all constraints active, trace on; "
        f"{describe()})"
    )
    for r in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])
