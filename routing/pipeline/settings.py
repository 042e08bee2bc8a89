"""Pipeline settings: the knobs the Django layer passes in (strategy, weights...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from routing.pipeline.counters import CounterStore
from routing.pipeline.types import Strategy

#: Default scorers of the smart strategy and their weights, in order (see
#: docs/pipeline.md). ``cost`` only counts when the budget reconciler asks to
#: prefer cheaper backends.
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"priority": 0.4, "load": 0.25, "latency": 0.2, "errors": 0.15, "cost": 0.5}
)
DEFAULT_SCORERS: tuple[tuple[str, float], ...] = tuple(DEFAULT_WEIGHTS.items())
_NO_WEIGHTS: Mapping[str, float] = MappingProxyType({})

#: Wait announced for a ``loading`` backend that gives no ``loading_eta_ms``.
DEFAULT_LOADING_WAIT_MS = 30_000


class SettingsError(ValueError):
    """A pipeline setting is invalid; the message says which and why."""


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Everything configurable about the default reconcilers.

    ``scorers`` are the smart strategy's (scorer, weight) pairs in order: a
    built-in name, a dotted path or a scorer object (see
    ``scorers.load_scorer``). ``weights`` overrides the weight of any subset of
    them, by name. ``random_seed`` makes the
    ``random`` strategy reproducible.
    ``counter_store`` is used by ``round_robin`` (in-memory when None).
    """

    strategy: Strategy = Strategy.SMART
    weights: Mapping[str, float] = field(default_factory=lambda: _NO_WEIGHTS)
    scorers: tuple[tuple[Any, float], ...] = DEFAULT_SCORERS
    default_output_tokens: int = 256
    random_seed: int | None = None
    counter_store: CounterStore | None = None
    default_loading_wait_ms: int = DEFAULT_LOADING_WAIT_MS

    def __post_init__(self) -> None:
        try:
            Strategy(self.strategy)
        except ValueError:
            choices = ", ".join(s.value for s in Strategy)
            raise SettingsError(
                f"Unknown strategy {self.strategy!r}; choose one of {choices}."
            ) from None
        known = [_name(scorer) for scorer, _ in self.scorers]
        unknown = sorted(set(self.weights) - set(known))
        if unknown:
            raise SettingsError(
                f"Unknown smart-strategy weight(s) {unknown}; "
                f"known weights are {sorted(known)}."
            )
        pairs = [(_name(scorer), weight) for scorer, weight in self.scorers]
        for key, value in (*self.weights.items(), *pairs):
            if not isinstance(value, int | float) or not value >= 0:
                raise SettingsError(f"Weight {key!r} must be a number >= 0.")
        if self.default_output_tokens < 1:
            raise SettingsError("default_output_tokens must be at least 1.")

    def effective_scorers(self) -> list[tuple[Any, float]]:
        """(scorer, weight) in order: ``scorers`` with ``weights`` applied."""
        return [
            (scorer, float(self.weights.get(_name(scorer), weight)))
            for scorer, weight in self.scorers
        ]


def _name(scorer: Any) -> str:
    """A scorer entry's name: the string itself, or the object's ``name``."""
    return scorer if isinstance(scorer, str) else str(getattr(scorer, "name", scorer))
