"""Golden comparison of routing decisions: ``python -m routing.dev.golden``.

``--out FILE [--routes N] [--seed S]`` routes N (default 40,000) generated,
varied requests and writes one JSON line per route: the result's ``to_dict()``
without durations, plus ``excluded_by``. ``--compare OLD NEW`` reports how many
lines are identical and, for the others, which top-level keys differ.

Deterministic from the seed. It uses only the public API that stays stable
(``routing.pipeline``: RoutingRequest, RoutingContext, PipelineSettings,
default_pipeline; the snapshots of ``routing.pipeline.types``; ``parse_privacy``),
so the same file runs on old and new code: copy it into an old checkout to make
the baseline, then diff.

Each generated config (fleet of 1-60 backends, aliases with chains and errors,
fallback chains, policies) serves several requests in a row, so per-snapshot
caches are exercised the way a server uses them. Strategies: smart (default
and custom weights), priority, round_robin (a fresh counter store per route
with a generated starting turn) and random (a generated seed per route).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Iterator
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
    BackendSnapshot,
    BudgetSnapshot,
    ConfigSnapshot,
    ErrorPolicy,
    HardLimitAction,
    Health,
    ModelOffer,
    PolicySnapshot,
    Strategy,
    TierMode,
)

ZONES = {"local": True, "eu-private": True, "cloud": False, "us-cloud": False}
MODELS = ("llama3", "mistral", "qwen", "gpt-4o", "phi")
PERIOD_END = date(2026, 12, 1)
TODAY = date(2026, 11, 15)
REQUESTS_PER_CONFIG = 8


class StartAt:
    """A fresh round-robin counter store starting at a given turn."""

    def __init__(self, start: int) -> None:
        self.value = start

    def next(self, key: str) -> int:
        value = self.value
        self.value += 1
        return value


class ExcludeSlow:
    """A custom fail-open reconciler (public intent API only)."""

    name = "exclude_slow"
    error_policy = ErrorPolicy.FAIL_OPEN

    def reconcile(self, intent: Any) -> None:
        for backend in intent.candidate_list():
            ms = backend.latency_ema_ms
            if ms is not None and ms > 2000:
                intent.exclude(backend.name, f"latency {ms:.0f} ms", "Speed it up.")


class Broken:
    """A custom reconciler that excludes one backend, then raises."""

    def __init__(self, policy: ErrorPolicy) -> None:
        self.name = f"broken_{policy.value}"
        self.error_policy = policy

    def reconcile(self, intent: Any) -> None:
        for backend in intent.candidate_list()[:1]:
            intent.exclude(backend.name, "broken says no", "")
        intent.annotate("broken_seen", True)
        intent.warn("broken ran")
        raise RuntimeError("boom")


def _context(config: ConfigSnapshot, budgets: tuple[BudgetSnapshot, ...]) -> Any:
    names = {f.name for f in dataclasses.fields(RoutingContext)}
    extra = {"today": TODAY} if "today" in names else {}
    return RoutingContext(config=config, budgets=budgets, **extra)


def _price(rng: random.Random) -> float:
    return rng.choice((0.0, 0.0, 0.0005, 0.001, 0.01, 0.03, 0.5, 2.0, 1e-9))


def gen_backend(rng: random.Random, i: int, odd: bool) -> BackendSnapshot:
    zone = rng.choice(("local", "eu-private", "cloud", "us-cloud", None, "local"))
    private = ZONES.get(zone or "", False)
    priced = rng.random() < (0.3 if private else 0.8)
    offers = {}
    for model in rng.sample(MODELS, rng.randint(1, 4)):
        offers[model] = ModelOffer(
            model,
            context_window=rng.choice((2048, 4096, 8192, 32768, 128000)),
            vision=rng.random() < 0.4,
            tools=rng.random() < 0.6,
            json_mode=rng.random() < 0.7,
            input_cost_per_1k=_price(rng) if priced else 0.0,
            output_cost_per_1k=_price(rng) if priced else 0.0,
        )
    latency: float | None = rng.choice((None, rng.uniform(5, 4000), 0.0))
    error_rate = rng.choice((0.0, rng.random() * 0.3, 1.0))
    if odd and rng.random() < 0.1:
        latency = rng.choice((math.nan, math.inf, -5.0))
        error_rate = rng.choice((math.nan, 1.5, -0.1))
    return BackendSnapshot(
        name=f"b{i:02d}-{rng.choice('xyz')}",
        base_url=f"http://10.0.0.{i}:8000",
        privacy_zone=zone,
        zone_private=private,
        capability_tier=rng.randint(1, 5),
        priority=rng.choice((0, 10, 50, 50, 90, 100, rng.randint(0, 100))),
        enabled=rng.random() > 0.08,
        health=rng.choice(
            (Health.HEALTHY,) * 5 + (Health.UNKNOWN, Health.LOADING, Health.UNHEALTHY)
        ),
        loading_eta_ms=rng.choice((None, 1500, 0)),
        pending_requests=rng.randint(0, 10),
        max_concurrency=rng.randint(0, 8),
        latency_ema_ms=latency,
        error_rate=error_rate,
        models=offers,
    )


def gen_policy(rng: random.Random, i: int) -> PolicySnapshot:
    pattern = rng.choice(
        (*MODELS, "*", "gpt-*", "ll*", "?istral", "assistant", "smart", "*o*", "q*n")
    )
    return PolicySnapshot(
        name=f"p{i}",
        model_pattern=pattern,
        order=rng.choice((1, 5, 10, 100, 100)),
        privacy=rng.choice(
            (
                "unrestricted",
                "unrestricted",
                "restricted",
                "zone:local",
                "zone:cloud",
                "zone:eu-private",
                "bogus!",
            )
        ),
        min_tier=rng.choice((None, None, 1, 2, 3, 4, 5)),
        fallback_allowed=rng.random() < 0.8,
        max_cost_per_request_usd=rng.choice((None, None, 0.0, 0.0001, 0.01, 1.0)),
    )


def gen_config(rng: random.Random, version: int) -> ConfigSnapshot:
    size = rng.choice((1, 2, 3, 5, 8, 12, 20, 20, 30, 30, 45, 60))
    odd = rng.random() < 0.1
    backends = tuple(gen_backend(rng, i, odd) for i in range(size))
    aliases: dict[str, str] = {}
    if rng.random() < 0.7:
        aliases["assistant"] = rng.choice(MODELS)
        aliases["smart"] = rng.choice(("assistant", "gpt-4o", "nobody"))
        aliases["deep"] = "smart"
        aliases["deeper"] = "deep"
        aliases["deepest"] = "deeper"  # 4 hops: too long
        if rng.random() < 0.3:
            aliases["loop-a"] = "loop-b"
            aliases["loop-b"] = "loop-a"
    fallbacks: dict[str, tuple[str, ...]] = {}
    for name in rng.sample((*MODELS, "assistant", "nobody"), rng.randint(0, 4)):
        fallbacks[name] = tuple(
            rng.sample((*MODELS, "nobody", "assistant"), rng.randint(1, 3))
        )
    policies = tuple(gen_policy(rng, i) for i in range(rng.randint(0, 4)))
    return ConfigSnapshot(
        version=version,
        backends=backends,
        zones=ZONES,
        aliases=aliases,
        fallbacks=fallbacks,
        policies=tuple(sorted(policies, key=lambda p: (p.order, p.name))),
    )


def gen_budget(rng: random.Random, i: int) -> BudgetSnapshot:
    limit = rng.choice((None, 100.0, 10.0, 1.0, 0.0))
    soft = rng.choice((50, 75, 90, 100))
    kind = rng.choice(("normal", "soft", "hard", "near", "near", "exact"))
    spent = reserved = 0.0
    if limit is not None:
        if kind == "soft":
            spent = limit * soft / 100.0
        elif kind == "hard":
            spent = limit * rng.choice((1.0, 1.2))
        elif kind == "near":
            spent = limit - rng.choice((0.0001, 0.001, 0.01, 0.2))
            reserved = rng.choice((0.0, 0.00005))
        elif kind == "exact":
            spent, reserved = limit * 0.5, limit * 0.5 - 0.000001
        else:
            spent = limit * rng.random() * 0.5
    return BudgetSnapshot(
        name=f"budget-{i}",
        monthly_limit_usd=limit,
        soft_limit_percent=soft,
        hard_limit_action=rng.choice(tuple(HardLimitAction)),
        period_start=date(2026, 11, 1),
        period_end=rng.choice((PERIOD_END, None)),
        spent_usd=spent,
        reserved_usd=reserved,
    )


def gen_body(rng: random.Random, model: str) -> Any:
    kind = rng.random()
    if kind < 0.03:
        return rng.choice(([], "text", {"messages": "nope"}, {"messages": [1, None]}))
    text = "word " * rng.choice((1, 10, 200, 2000, 9000, 40000))
    content: Any = text
    if rng.random() < 0.25:
        content = [{"type": "text", "text": text}]
        if rng.random() < 0.6:
            content.append({"type": rng.choice(("image_url", "input_image"))})
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
    }
    if rng.random() < 0.35:
        body["tools"] = [{"type": "function", "function": {"name": "f"}}]
    if rng.random() < 0.25:
        body["response_format"] = {"type": rng.choice(("json_object", "text"))}
    output = rng.choice((None, None, 16, 512, 4096, 100000, 0, True))
    if output is not None:
        body[rng.choice(("max_tokens", "max_completion_tokens"))] = output
    return body


def gen_request(rng: random.Random) -> RoutingRequest:
    model = rng.choice(
        (
            *MODELS,
            *MODELS,
            *MODELS,
            "assistant",
            "smart",
            "deep",
            "deepest",
            "loop-a",
            "nope",
        )
    )
    sources: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    for key, choices in (
        (
            "privacy",
            ("restricted", "zone:local", "zone:cloud", "unrestricted"),
        ),
        ("min_tier", (1, 2, 3, 4, 5)),
        ("tier_mode", (TierMode.STRICT, TierMode.FLEXIBLE, TierMode.FLEXIBLE)),
        ("max_cost_usd", (0.0, 0.00001, 0.001, 0.05, 10.0)),
    ):
        if rng.random() < 0.3:
            value = rng.choice(choices)
            kwargs[key] = parse_privacy(value) if key == "privacy" else value
            sources[key] = rng.choice(("body", "header"))
    return RoutingRequest(
        model=model, body=gen_body(rng, model), sources=sources, **kwargs
    )


def gen_settings(rng: random.Random) -> tuple[PipelineSettings, list[Any]]:
    strategy = rng.choice(
        (Strategy.SMART,) * 5
        + (Strategy.PRIORITY, Strategy.ROUND_ROBIN, Strategy.RANDOM)
    )
    weights: dict[str, float] = {}
    if strategy is Strategy.SMART and rng.random() < 0.2:
        for key in rng.sample(("priority", "load", "latency", "errors", "cost"), 2):
            weights[key] = rng.choice((0.0, 0.1, 1.0, 3.0))
    extra: list[Any] = []
    roll = rng.random()
    if roll < 0.05:
        extra.append(ExcludeSlow())
    elif roll < 0.08:
        extra.append(Broken(rng.choice(tuple(ErrorPolicy))))
    settings = PipelineSettings(
        strategy=strategy,
        random_seed=rng.randint(0, 1000),
        counter_store=StartAt(rng.randint(0, 50)),
        default_output_tokens=rng.choice((256, 256, 1, 5000)),
        **({"weights": weights} if weights else {}),
    )
    return settings, extra


def _strip(entry: dict[str, Any]) -> dict[str, Any]:
    entry = dict(entry)
    entry.pop("duration_us", None)
    return entry


def routes(total: int, seed: int) -> Iterator[dict[str, Any]]:
    """Route ``total`` generated requests; yield each result's comparable form."""
    rng = random.Random(seed)
    done = 0
    version = 0
    while done < total:
        version += 1
        config = gen_config(rng, version)
        for _ in range(REQUESTS_PER_CONFIG):
            if done >= total:
                break
            budgets = tuple(gen_budget(rng, i) for i in range(rng.randint(0, 3)))
            settings, extra = gen_settings(rng)
            pipeline = default_pipeline(settings, extra=extra)
            result = pipeline.route(gen_request(rng), _context(config, budgets))
            data = result.to_dict()
            data.pop("pipeline_duration_us", None)
            data["trace"] = [_strip(entry) for entry in data["trace"]]
            data["excluded_by"] = list(result.excluded_by)
            data["route"] = done
            done += 1
            yield data


def compare(old_path: str, new_path: str, ignore: set[str]) -> int:
    """Print identical/different counts and which keys differ; 0 when identical."""
    total = same = 0
    keys: Counter[str] = Counter()
    examples: dict[str, int] = {}
    with open(old_path) as old, open(new_path) as new:
        old_lines, new_lines = old.readlines(), new.readlines()
        if len(old_lines) != len(new_lines):
            print(f"{len(old_lines)} vs {len(new_lines)} routes: use the same --routes")
            return 2
        for line_old, line_new in zip(old_lines, new_lines, strict=True):
            total += 1
            if line_old == line_new:
                same += 1
                continue
            # NaN never equals itself: compare it as the string "NaN".
            a = json.loads(line_old, parse_constant=str)
            b = json.loads(line_new, parse_constant=str)
            for data in (a, b):
                for key in ignore:
                    data.get("annotations", {}).pop(key, None)
            if a == b:
                same += 1
                continue
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    if key == "annotations":
                        ann_a, ann_b = a[key], b.get(key, {})
                        for sub in sorted(set(ann_a) | set(ann_b)):
                            if ann_a.get(sub) != ann_b.get(sub):
                                keys[f"annotations.{sub}"] += 1
                                examples.setdefault(f"annotations.{sub}", a["route"])
                    else:
                        keys[key] += 1
                        examples.setdefault(key, a["route"])
    print(f"routes compared: {total}; identical: {same}; different: {total - same}")
    for key, count in keys.most_common():
        print(f"  {key}: {count} routes (first: route {examples[key]})")
    return 0 if same == total else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the JSON lines here")
    parser.add_argument("--routes", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"))
    parser.add_argument(
        "--ignore-annotation",
        action="append",
        default=[],
        help="annotation key to leave out of --compare (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare, ignore=set(args.ignore_annotation))
    if not args.out:
        parser.error("give --out FILE or --compare OLD NEW")
    with open(args.out, "w") as out:
        for data in routes(args.routes, args.seed):
            out.write(json.dumps(data, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
