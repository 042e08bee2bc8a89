"""Scorers: the signals the ``smart`` strategy weighs.

A scorer is any object with a ``name`` and ``score(candidates, intent)``
returning a mapping of candidate name -> score in [0, 1], higher better (it may
hold more names than the candidates). Selection takes the weighted mean of the
scorers' values per candidate (see ``reconcilers/selection.py``).

A scorer with ``optional = True`` counts only in attempts where a reconciler
asked for it with ``intent.use_scorer(name)``: the budget does so for ``cost``
at its soft or hard limit, so cost weighs in only when money is short.

Built-ins (every value in [0, 1]):

- ``priority`` = 1 - priority / 100 (priority 0 is the most preferred);
- ``load`` = 1 - min(pending_requests / max_concurrency, 1);
- ``latency`` = 1000 / (1000 + latency_ema_ms); unknown latency = 0.5 (neutral,
  the value of a 1 s backend);
- ``errors`` = 1 - error_rate;
- ``cost`` (optional) = 1 - cost / most expensive candidate's cost (1 when all
  are free).

Weights come from ``PipelineSettings.scorers`` (Django: ``NEXUS_SCORERS``,
e.g. ``"priority:0.4,load:0.25,latency:0.2,errors:0.15,cost:0.5"``; a custom
scorer by dotted path, ``"myapp.scorers.Affinity:0.3"``).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar, cast

from mypy_extensions import mypyc_attr

from routing.pipeline.budgets import estimated_costs
from routing.pipeline.intent import RoutingIntent
from routing.pipeline.protocols import Scorer
from routing.pipeline.settings import SettingsError
from routing.pipeline.types import BackendSnapshot

LATENCY_REFERENCE_MS = 1000.0
NEUTRAL_LATENCY = 0.5


@mypyc_attr(allow_interpreted_subclasses=True)
class BackendScorer(ABC):
    """A scorer whose value depends only on the backend: ``factor(backend)``.

    The index keeps every backend's factor per snapshot (and scorer instance),
    so scoring is a lookup. Subclasses set ``name`` and define ``factor``.
    """

    name: ClassVar[str] = ""
    #: True when ``score`` also reads the context's live in-flight counts.
    live: ClassVar[bool] = False

    def __init__(self) -> None:
        # ABC's own check, which the compiled pipeline's classes skip.
        if type(self).factor is BackendScorer.factor:
            raise TypeError(
                f"Can't instantiate {type(self).__name__}: a BackendScorer needs "
                "a factor(backend) method."
            )

    @abstractmethod
    def factor(self, backend: BackendSnapshot) -> float:
        """The backend's score in [0, 1]."""

    def score(
        self, candidates: Sequence[BackendSnapshot], intent: RoutingIntent
    ) -> Mapping[str, float]:
        """Each candidate's factor."""
        factor = self.factor
        known = intent.index.per_backend(factor)
        scores = {}
        for b in candidates:
            hit = known.get(b.name)
            scores[b.name] = hit[1] if hit is not None and hit[0] is b else factor(b)
        return scores


class PriorityScorer(BackendScorer):
    """Lower priority number is better: 1 - priority / 100."""

    name: ClassVar[str] = "priority"

    def factor(self, backend: BackendSnapshot) -> float:
        """0-100 priority (lower preferred) as a 0-1 factor (higher better)."""
        return 1.0 - min(max(backend.priority, 0), 100) / 100.0


class LoadScorer(BackendScorer):
    """Free share of the backend's concurrency, counting live in-flight requests."""

    name: ClassVar[str] = "load"
    live: ClassVar[bool] = True

    def factor(self, backend: BackendSnapshot) -> float:
        """1 - min(pending_requests / max_concurrency, 1)."""
        return free_share(backend, 0)

    def score(
        self, candidates: Sequence[BackendSnapshot], intent: RoutingIntent
    ) -> Mapping[str, float]:
        """As ``factor``, with the context's in-flight count added to each
        backend's ``pending_requests`` when the context has one."""
        in_flight = intent.context.in_flight
        if not in_flight:
            return super().score(candidates, intent)
        return {b.name: free_share(b, in_flight.get(b.name, 0)) for b in candidates}


def free_share(backend: BackendSnapshot, in_flight: int) -> float:
    """1 - min((pending_requests + in_flight) / max_concurrency, 1)."""
    pending = max(backend.pending_requests, 0) + max(in_flight, 0)
    return 1.0 - min(pending / max(backend.max_concurrency, 1), 1.0)


class LatencyScorer(BackendScorer):
    """Fast backends near 1, slow ones towards 0, unknown neutral (0.5)."""

    name: ClassVar[str] = "latency"

    def factor(self, backend: BackendSnapshot) -> float:
        """1000 / (1000 + latency_ema_ms); 0.5 when unknown."""
        ms = backend.latency_ema_ms
        if ms is None:
            return NEUTRAL_LATENCY
        return LATENCY_REFERENCE_MS / (LATENCY_REFERENCE_MS + max(ms, 0.0))


class ErrorsScorer(BackendScorer):
    """Share of successful requests."""

    name: ClassVar[str] = "errors"

    def factor(self, backend: BackendSnapshot) -> float:
        """1 - error_rate."""
        return 1.0 - min(max(backend.error_rate, 0.0), 1.0)


class CostScorer:
    """Cheaper than the most expensive candidate -> closer to 1 (all free: 1).

    Optional: counts only when a reconciler calls ``intent.use_scorer("cost")``.
    """

    name: ClassVar[str] = "cost"
    optional = True

    def score(
        self, candidates: Sequence[BackendSnapshot], intent: RoutingIntent
    ) -> Mapping[str, float]:
        """Each candidate's cost factor, from its estimated cost."""
        names = [b.name for b in candidates]
        costs = estimated_costs(names, intent.offers, intent.requirements)
        top = max(costs.values()) if costs else 0.0
        if not top > 0:
            return dict.fromkeys(costs, 1.0)
        return {n: 1.0 - min(max(cost, 0.0) / top, 1.0) for n, cost in costs.items()}


#: The built-in scorers by name.
BUILTIN_SCORERS: Mapping[str, type] = {
    s.name: s
    for s in (PriorityScorer, LoadScorer, LatencyScorer, ErrorsScorer, CostScorer)
}


class ScorerConfigError(SettingsError):
    """A scorer setting is invalid; the message says which and why."""


def parse_scorers(text: str) -> tuple[tuple[str, float], ...]:
    """``"priority:0.4,myapp.scorers.Affinity:0.3"`` -> ((name or path, weight),
    ...); raises ``ScorerConfigError`` naming the bad entry."""
    entries = []
    for item in [part.strip() for part in text.split(",")]:
        if not item:
            continue
        name, sep, weight = item.rpartition(":")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not name or not value >= 0 or value == float("inf"):
            raise ScorerConfigError(
                f"Scorer entry {item!r} must be 'name:weight' with a weight >= 0, "
                "e.g. 'priority:0.4' or 'myapp.scorers.Affinity:0.3'."
            )
        entries.append((name.strip(), value))
    names = [n for n, _ in entries]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ScorerConfigError(f"Scorers repeat: {', '.join(repeated)}.")
    return tuple(entries)


def load_scorer(name_or_path: str | Scorer) -> Scorer:
    """A built-in scorer by name, ``pkg.module.Name`` (a class instantiated
    with no arguments, a factory, or an instance), or a scorer object."""
    if not isinstance(name_or_path, str):
        if not _is_scorer(name_or_path):
            raise ScorerConfigError(
                f"{name_or_path!r} is not a scorer: it needs a str 'name' and a "
                "score(candidates, intent) method."
            )
        return name_or_path
    builtin = BUILTIN_SCORERS.get(name_or_path)
    if builtin is not None:
        scorer: object = builtin()
    else:
        module_path, _, attr = name_or_path.rpartition(".")
        if not module_path:
            raise ScorerConfigError(
                f"Unknown scorer {name_or_path!r}; built-ins are "
                f"{', '.join(BUILTIN_SCORERS)}, or give a dotted path."
            )
        try:
            target = getattr(importlib.import_module(module_path), attr)
            scorer = target() if callable(target) and not _is_scorer(target) else target
        except Exception as exc:
            raise ScorerConfigError(
                f"Cannot load scorer {name_or_path!r}: {type(exc).__name__}: {exc}"
            ) from exc
    if not _is_scorer(scorer):
        raise ScorerConfigError(
            f"{name_or_path!r} is not a scorer: it needs a str 'name' and a "
            "score(candidates, intent) method."
        )
    return cast(Scorer, scorer)


def _is_scorer(obj: object) -> bool:
    return (
        not isinstance(obj, type)
        and isinstance(getattr(obj, "name", None), str)
        and callable(getattr(obj, "score", None))
    )
