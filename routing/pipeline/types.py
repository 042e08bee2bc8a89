"""Domain vocabulary of the routing pipeline: StrEnums and read-only snapshots.

Pure Python. The Django models use these enums for their ``choices`` so there is
one source of truth and dependencies point inward (models -> pipeline).
"""

from __future__ import annotations

import copyreg
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple


class BackendKind(StrEnum):
    """The software a backend runs; decides how it is probed."""

    OLLAMA = "ollama"
    VLLM = "vllm"
    LLAMACPP = "llamacpp"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GENERIC = "generic"


class Health(StrEnum):
    """Last known health of a backend (``unknown`` = never probed, still routable)."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    LOADING = "loading"
    UNKNOWN = "unknown"


class PrivacyLevel(StrEnum):
    """The kinds of privacy constraint; ``zone`` is written ``zone:<name>``."""

    UNRESTRICTED = "unrestricted"
    RESTRICTED = "restricted"
    ZONE = "zone"


class TierMode(StrEnum):
    """Strict never goes below the required tier; flexible may, with a warning."""

    STRICT = "strict"
    FLEXIBLE = "flexible"


class BudgetStatus(StrEnum):
    """Where spent + reserved stands against a budget's limit."""

    NORMAL = "normal"
    SOFT_LIMIT = "soft_limit"
    HARD_LIMIT = "hard_limit"


class HardLimitAction(StrEnum):
    """What the budget reconciler does once the hard limit is reached."""

    WARN = "warn"
    BLOCK_CLOUD = "block_cloud"
    BLOCK_ALL = "block_all"


class Outcome(StrEnum):
    """The three decisions the pipeline can make."""

    ROUTE = "route"
    QUEUE = "queue"
    REJECT = "reject"


class ErrorPolicy(StrEnum):
    """What happens when a reconciler raises: continue, or reject the request."""

    FAIL_OPEN = "fail_open"
    FAIL_CLOSED = "fail_closed"


class Strategy(StrEnum):
    """Selection strategies."""

    SMART = "smart"
    ROUND_ROBIN = "round_robin"
    PRIORITY = "priority"
    RANDOM = "random"


def _frozen_mapping[K, V](data: Mapping[K, V] | None = None) -> Mapping[K, V]:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True)
class ModelOffer:
    """One model a backend serves, with its capabilities and prices (USD per 1k)."""

    name: str
    context_window: int = 8192
    vision: bool = False
    tools: bool = False
    json_mode: bool = False
    input_cost_per_1k: float = 0.0
    output_cost_per_1k: float = 0.0


@dataclass(frozen=True, slots=True)
class BackendSnapshot:
    """A backend as the pipeline sees it. ``zone_private`` is False when no zone."""

    name: str
    kind: BackendKind = BackendKind.GENERIC
    base_url: str = ""
    privacy_zone: str | None = None
    zone_private: bool = False
    capability_tier: int = 1
    priority: int = 50
    enabled: bool = True
    health: Health = Health.UNKNOWN
    #: Why it is unhealthy, when not a failed probe (an open circuit, a 429).
    health_reason: str = ""
    loading_eta_ms: int | None = None
    pending_requests: int = 0
    max_concurrency: int = 1
    latency_ema_ms: float | None = None
    error_rate: float = 0.0
    models: Mapping[str, ModelOffer] = field(default_factory=_frozen_mapping)


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """A traffic policy; privacy is unrestricted, restricted or zone:<name>."""

    name: str
    model_pattern: str
    order: int = 100
    privacy: str = PrivacyLevel.UNRESTRICTED.value
    min_tier: int | None = None
    fallback_allowed: bool = True
    max_cost_per_request_usd: float | None = None

    def __hash__(self) -> int:  # compiled: native code (the generated one is not)
        return hash((self.name, self.model_pattern, self.order))


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """What a budget governs; a field that is None matches anything.

    ``clients``: API key (or user) names; ``models``: globs over the resolved
    model; ``zones`` and ``backends``: the candidate backend's zone and name.
    """

    clients: frozenset[str] | None = None
    models: tuple[str, ...] | None = None
    zones: frozenset[str] | None = None
    backends: frozenset[str] | None = None

    @property
    def per_backend(self) -> bool:
        """Whether it depends on the backend (zones or backends listed)."""
        return self.zones is not None or self.backends is not None


#: The scope of a budget without one: everything.
EVERYTHING = BudgetScope()


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """A budget's settings, scope and current-period spend (limit None =
    tracking only: it books spend and never excludes)."""

    name: str
    monthly_limit_usd: float | None
    soft_limit_percent: int = 75
    hard_limit_action: HardLimitAction = HardLimitAction.BLOCK_CLOUD
    reset_day: int = 1
    period_start: date | None = None
    period_end: date | None = None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    scope: BudgetScope = EVERYTHING


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """Everything configured, read once per config version and shared across requests.

    ``policies`` are sorted by (order, name). ``fallbacks`` maps a model to its
    ordered fallback models. ``zones`` maps a zone name to whether it is private.
    """

    version: int
    backends: tuple[BackendSnapshot, ...] = ()
    zones: Mapping[str, bool] = field(default_factory=_frozen_mapping)
    aliases: Mapping[str, str] = field(default_factory=_frozen_mapping)
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen_mapping)
    policies: tuple[PolicySnapshot, ...] = ()


def _by_constructor(snapshot: Any) -> tuple[type, tuple[Any, ...]]:
    """Pickle a snapshot as a call of its class with every field: the frozen
    classes of the compiled build (``routing.pipeline_build``) have no other way."""
    return type(snapshot), tuple(getattr(snapshot, f.name) for f in fields(snapshot))


for _snapshot in (
    ModelOffer,
    BackendSnapshot,
    PolicySnapshot,
    BudgetScope,
    BudgetSnapshot,
    ConfigSnapshot,
):
    copyreg.pickle(_snapshot, _by_constructor)


class Rejection(NamedTuple):
    """Why one backend was excluded, by which reconciler, and what would fix it.

    A named tuple (immutable and cheap to create: the hot path makes one per
    excluded backend).
    """

    backend: str
    reconciler: str
    reason: str
    suggested_action: str = ""
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form used in ``error.rejections``."""
        return {
            "backend": self.backend,
            "reconciler": self.reconciler,
            "reason": self.reason,
            "suggested_action": self.suggested_action,
            "model": self.model,
        }
