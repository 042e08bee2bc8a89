"""Sample decisions in bulk, for demos, load tests and benchmarks of the explorer.

Synthetic requests (models served, aliases and unknown models; privacy and
zone constraints from a header or the body; minimum tiers; vision, tools and
JSON mode; small to very large prompts; the known clients) are routed through
the real pipeline against today's configuration and budgets, so every sample
agrees with the fleet: its backends, zones, tiers, models and config version
exist. A run draws ``PROFILES`` request shapes, sends a few of them often and
most rarely, and routes each shape once (its result reused).

Rows are built by the bulk path of ``routing.services.decisions`` (the
columns ``decision_record`` writes), marked ``sample`` and inserted in
batches, spread over the last ``days`` days. Nothing else is touched: no
budget is reserved, no ledger entry written, no round-robin position or other
live counter moved (the pipeline here turns a rotation of its own).
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from routing.adapters import budget_snapshots, build_pipeline, config_snapshot
from routing.models import ApiKey
from routing.pipeline import (
    InMemoryCounterStore,
    RoutingContext,
    RoutingRequest,
    RoutingResult,
)
from routing.pipeline.rules import parse_privacy
from routing.pipeline.types import BudgetSnapshot, ConfigSnapshot, TierMode
from routing.services.decisions import decision_rows, decisions_insert

#: Model names asked for that no fleet is expected to serve (model_not_found).
UNKNOWN_MODELS = ("gpt-3.5-turbo", "mistral-large-latest", "gemini-1.5-pro")
#: Prompt sizes in estimated input tokens, and how often each is asked for.
INPUT_TOKENS = (60, 250, 800, 2_000, 6_000, 20_000, 90_000)
INPUT_WEIGHTS = (15, 25, 25, 15, 10, 7, 3)
#: ``max_tokens`` asked for (None: the pipeline's default).
OUTPUT_TOKENS = (None, None, 128, 512, 1_024, 4_096)
COST_CAPS = (0.001, 0.01, 0.05)
#: Distinct request shapes per run (each routed once unless ``route_every``).
PROFILES = 400
#: The client when no API key exists and no budget names one.
DEFAULT_CLIENT = "sample"
_TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
_IMAGE = {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}


class FleetMissing(Exception):
    """No backend serves a model: there is nothing to route samples to."""


@dataclass(frozen=True)
class Shape:
    """What a synthetic request asks for; equal shapes route the same way."""

    model: str
    client: str
    privacy: str | None = None
    min_tier: int | None = None
    tier_mode: str | None = None
    max_cost_usd: float | None = None
    constraint_source: str = "header"
    vision: bool = False
    tools: bool = False
    json_mode: bool = False
    input_tokens: int = 250
    output_tokens: int | None = None

    def request(self) -> RoutingRequest:
        """The request as the route API would pass it to the pipeline."""
        content: list[dict[str, Any]] = [
            {"type": "text", "text": "x" * (self.input_tokens * 4)}
        ]
        if self.vision:
            content.append(_IMAGE)
        body: dict[str, Any] = {"messages": [{"role": "user", "content": content}]}
        if self.tools:
            body["tools"] = [_TOOL]
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        if self.output_tokens is not None:
            body["max_tokens"] = self.output_tokens
        stated = {
            "privacy": self.privacy,
            "min_tier": self.min_tier,
            "tier_mode": self.tier_mode,
            "max_cost_usd": self.max_cost_usd,
        }
        return RoutingRequest(
            model=self.model,
            body=body,
            privacy=parse_privacy(self.privacy) if self.privacy else None,
            min_tier=self.min_tier,
            tier_mode=TierMode(self.tier_mode) if self.tier_mode else None,
            max_cost_usd=self.max_cost_usd,
            sources={
                key: self.constraint_source
                for key, value in stated.items()
                if value is not None
            },
            client=self.client,
        )


@dataclass(frozen=True)
class Fleet:
    """What the samples are drawn from: today's configuration and budgets."""

    config: ConfigSnapshot
    budgets: tuple[BudgetSnapshot, ...]
    models: tuple[str, ...]
    aliases: tuple[str, ...]
    unknown: tuple[str, ...]
    zones: tuple[str, ...]
    clients: dict[str, int | None]  # client name -> its API key id


def sample_fleet() -> Fleet:
    """Today's configuration as sample material; ``FleetMissing`` if no backend
    serves a model."""
    config = config_snapshot()
    served = {
        name
        for backend in config.backends
        if backend.enabled
        for name in backend.models
    }
    if not served:
        raise FleetMissing(
            "No fleet is configured: no enabled backend serves a model, so there "
            "is nothing to route sample decisions to. Run `python manage.py "
            "load_demo --no-traffic` (the demo fleet) or add backends first."
        )
    models = {name for backend in config.backends for name in backend.models}
    budgets = budget_snapshots()
    clients: dict[str, int | None] = dict(
        ApiKey.objects.filter(is_active=True).values_list("name", "pk")
    )
    for budget in budgets:
        for client in sorted(budget.scope.clients or ()):
            clients.setdefault(client, None)
    known = models | set(config.aliases)
    return Fleet(
        config=config,
        budgets=budgets,
        models=tuple(sorted(models)),
        aliases=tuple(sorted(config.aliases)),
        unknown=tuple(m for m in UNKNOWN_MODELS if m not in known),
        zones=tuple(sorted(config.zones)),
        clients=clients or {DEFAULT_CLIENT: None},
    )


def _model(rng: random.Random, fleet: Fleet) -> str:
    """Mostly served models (a few popular ones most), some aliases, a few unknown."""
    roll = rng.random()
    if roll < 0.04 and fleet.unknown:
        return rng.choice(fleet.unknown)
    if roll < 0.18 and fleet.aliases:
        return rng.choice(fleet.aliases)
    weights = [1 / (rank + 1) for rank in range(len(fleet.models))]
    return rng.choices(fleet.models, weights=weights)[0]


def sample_shape(rng: random.Random, fleet: Fleet, clients: Sequence[str]) -> Shape:
    """One synthetic request against ``fleet``."""
    roll = rng.random()
    privacy = (
        None
        if roll < 0.72 or not fleet.zones
        else "restricted"
        if roll < 0.9
        else f"zone:{rng.choice(fleet.zones)}"
    )
    return Shape(
        model=_model(rng, fleet),
        client=rng.choice(clients),
        privacy=privacy,
        min_tier=rng.randint(1, 5) if rng.random() < 0.2 else None,
        tier_mode=(
            rng.choice([TierMode.FLEXIBLE.value, TierMode.STRICT.value])
            if rng.random() < 0.1
            else None
        ),
        max_cost_usd=rng.choice(COST_CAPS) if rng.random() < 0.08 else None,
        constraint_source="header" if rng.random() < 0.6 else "body",
        vision=rng.random() < 0.08,
        tools=rng.random() < 0.25,
        json_mode=rng.random() < 0.15,
        input_tokens=rng.choices(INPUT_TOKENS, weights=INPUT_WEIGHTS)[0],
        output_tokens=rng.choice(OUTPUT_TOKENS),
    )


def sample_profiles(
    rng: random.Random, fleet: Fleet, count: int
) -> tuple[list[Shape], list[float]]:
    """``count`` request shapes and how often each is sent (a few very often,
    most rarely): callers repeat their kinds of request."""
    clients = list(fleet.clients)
    shapes = [sample_shape(rng, fleet, clients) for _ in range(count)]
    weights = [1 / (rank + 1) ** 0.8 for rank in range(count)]
    return shapes, weights


class SampleRouter:
    """Routes shapes through the real pipeline on one fleet snapshot, each
    distinct shape once (``route_every`` routes every request instead)."""

    def __init__(self, fleet: Fleet, *, seed: int, route_every: bool = False) -> None:
        self.context = RoutingContext(config=fleet.config, budgets=fleet.budgets)
        # Its own round-robin rotation: the shared positions stay where they are.
        self.pipeline = build_pipeline(
            counter_store=InMemoryCounterStore(), random_seed=seed
        )
        self.route_every = route_every
        self.results: dict[Shape, RoutingResult] = {}
        self.routed = 0

    def route(self, shape: Shape) -> RoutingResult:
        result = None if self.route_every else self.results.get(shape)
        if result is None:
            result = self.pipeline.route(shape.request(), self.context)
            self.results[shape] = result
            self.routed += 1
        return result


@dataclass(frozen=True)
class SampleRun:
    """What ``decision_samples_generate`` wrote and how many pipeline runs it took."""

    written: int
    routed: int
    config_version: int


def decision_samples_generate(
    *,
    count: int,
    days: int = 30,
    batch_size: int = 5000,
    seed: int = 1,
    route_every: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SampleRun:
    """Write ``count`` sample decisions spread over the last ``days`` days, oldest
    first; ``FleetMissing`` when no backend serves a model."""
    fleet = sample_fleet()
    router = SampleRouter(fleet, seed=seed, route_every=route_every)
    rng = random.Random(seed)
    shapes, weights = sample_profiles(rng, fleet, PROFILES)
    cumulative = list(itertools.accumulate(weights))
    now = timezone.now()
    span = timedelta(days=days).total_seconds()
    step = span / max(count, 1)
    version = fleet.config.version
    written = 0
    while written < count:
        size = min(batch_size, count - written)
        decisions = []
        exclusions = []
        for i in range(written, written + size):
            shape = rng.choices(shapes, cum_weights=cumulative)[0]
            # Evenly spread, oldest first, each within its own slot.
            seconds_ago = span - step * (i + rng.random())
            decision, excluded = decision_rows(
                decision_id=uuid.uuid4(),  # unique even when a seed is reused
                result=router.route(shape),
                created_at=now - timedelta(seconds=max(seconds_ago, 0.0)),
                request_id=uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                client=shape.client,
                api_key_id=fleet.clients[shape.client],
                config_version=version,
                sample=True,
                request=shape.request(),
            )
            decisions.append(decision)
            exclusions.extend(excluded)
        decisions_insert(decisions=decisions, exclusions=exclusions)
        written += size
        if progress is not None:
            progress(written)
    return SampleRun(written=written, routed=router.routed, config_version=version)
