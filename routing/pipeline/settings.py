"""Pipeline settings: the knobs the Django layer passes in (strategy, weights...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from routing.pipeline.counters import CounterStore
from routing.pipeline.types import Strategy

#: Default weights of the smart strategy (see docs/pipeline.md). ``cost`` only
#: counts when the budget reconciler asks to prefer cheaper backends.
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"priority": 0.4, "load": 0.25, "latency": 0.2, "errors": 0.15, "cost": 0.5}
)

#: Wait announced for a ``loading`` backend that gives no ``loading_eta_ms``.
DEFAULT_LOADING_WAIT_MS = 30_000


class SettingsError(ValueError):
    """A pipeline setting is invalid; the message says which and why."""


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Everything configurable about the default reconcilers.

    ``weights`` may name any subset of ``DEFAULT_WEIGHTS``; missing keys keep their
    default. ``random_seed`` makes the ``random`` strategy reproducible.
    ``counter_store`` is used by ``round_robin`` (in-memory when None).
    """

    strategy: Strategy = Strategy.SMART
    weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_WEIGHTS)
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
        unknown = sorted(set(self.weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise SettingsError(
                f"Unknown smart-strategy weight(s) {unknown}; "
                f"known weights are {sorted(DEFAULT_WEIGHTS)}."
            )
        for key, value in self.weights.items():
            if not isinstance(value, int | float) or value < 0:
                raise SettingsError(f"Weight {key!r} must be a number >= 0.")
        if self.default_output_tokens < 1:
            raise SettingsError("default_output_tokens must be at least 1.")

    def effective_weights(self) -> dict[str, float]:
        """The defaults overridden by ``weights``."""
        merged = dict(DEFAULT_WEIGHTS)
        merged.update({k: float(v) for k, v in self.weights.items()})
        return merged
