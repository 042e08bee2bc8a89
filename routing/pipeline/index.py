"""Per-snapshot indexes, built once per ``ConfigSnapshot`` and shared by requests.

``index_for(config)`` returns the cached ``SnapshotIndex`` of a snapshot. The
cache holds the last few snapshots by identity (``id`` plus an ``is`` check, so a
recycled id can never return a stale index); a new config version is a new
snapshot object and gets a new index on first use. Building is O(backends x
models); every per-request lookup afterwards is O(1) or O(backends serving the
model).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from routing.pipeline.rules import glob_matches
from routing.pipeline.types import (
    BackendSnapshot,
    ConfigSnapshot,
    Health,
    ModelOffer,
    PolicySnapshot,
)

_T = TypeVar("_T")
_EMPTY_OFFERS: Mapping[str, ModelOffer] = MappingProxyType({})
_POLICY_CACHE_LIMIT = 4096
_INDEX_CACHE_SIZE = 8


class SnapshotIndex:
    """Read-only lookups over one ``ConfigSnapshot``.

    ``serving[model]`` lists the backends that offer ``model`` (in snapshot
    order), ``offers[model]`` maps backend name to that offer, and
    ``policies`` are sorted by (order, name).
    """

    __slots__ = (
        "backends_by_name",
        "config",
        "offers",
        "policies",
        "serving",
        "_constraint_cache",
        "_lock",
        "_policy_cache",
    )

    def __init__(self, config: ConfigSnapshot) -> None:
        self.config = config
        self.backends_by_name: dict[str, BackendSnapshot] = {}
        serving: dict[str, list[BackendSnapshot]] = {}
        offers: dict[str, dict[str, ModelOffer]] = {}
        for backend in config.backends:
            self.backends_by_name[backend.name] = backend
            for model, offer in backend.models.items():
                serving.setdefault(model, []).append(backend)
                offers.setdefault(model, {})[backend.name] = offer
        self.serving: dict[str, tuple[BackendSnapshot, ...]] = {
            model: tuple(backends) for model, backends in serving.items()
        }
        self.offers: dict[str, Mapping[str, ModelOffer]] = {
            model: MappingProxyType(by_backend) for model, by_backend in offers.items()
        }
        self.policies: tuple[PolicySnapshot, ...] = tuple(
            sorted(config.policies, key=lambda p: (p.order, p.name))
        )
        self._policy_cache: dict[tuple[str, ...], PolicySnapshot | None] = {}
        self._constraint_cache: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def availability(
        self, model: str
    ) -> tuple[dict[str, BackendSnapshot], tuple[tuple[str, str, str], ...]]:
        """(available backends by name, (name, reason, action) of the disabled and
        unhealthy ones) among the backends offering ``model``; memoised."""
        return self.memo(("availability", model), lambda: self._availability(model))

    def _availability(
        self, model: str
    ) -> tuple[dict[str, BackendSnapshot], tuple[tuple[str, str, str], ...]]:
        available: dict[str, BackendSnapshot] = {}
        unavailable: list[tuple[str, str, str]] = []
        for backend in self.serving.get(model, ()):
            if not backend.enabled:
                unavailable.append(
                    (
                        backend.name,
                        "disabled by an operator",
                        f"Enable backend '{backend.name}'.",
                    )
                )
            elif backend.health == Health.UNHEALTHY:
                unavailable.append(
                    (
                        backend.name,
                        "unhealthy (failed its last health check)",
                        f"Check backend '{backend.name}' and its health probe.",
                    )
                )
            else:
                available[backend.name] = backend
        return available, tuple(unavailable)

    def offers_for(self, model: str) -> Mapping[str, ModelOffer]:
        """Backend name -> offer of ``model`` (empty when nobody serves it)."""
        return self.offers.get(model, _EMPTY_OFFERS)

    def first_matching_policy(self, names: tuple[str, ...]) -> PolicySnapshot | None:
        """The first policy (by order, name) whose pattern matches any of ``names``."""
        cache = self._policy_cache
        try:
            return cache[names]
        except KeyError:
            pass
        found: PolicySnapshot | None = None
        for policy in self.policies:
            if any(glob_matches(policy.model_pattern, name) for name in names):
                found = policy
                break
        with self._lock:
            if len(cache) >= _POLICY_CACHE_LIMIT:
                cache.clear()
            cache[names] = found
        return found

    def memo(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """Per-snapshot memo (bounded) for values derived from config + key."""
        cache = self._constraint_cache
        try:
            value: _T = cache[key]
            return value
        except KeyError:
            pass
        value = compute()
        with self._lock:
            if len(cache) >= _POLICY_CACHE_LIMIT:
                cache.clear()
            cache[key] = value
        return value


_cache: dict[int, SnapshotIndex] = {}
_cache_lock = threading.Lock()


def index_for(config: ConfigSnapshot) -> SnapshotIndex:
    """Return the (cached) index of ``config``; builds it on first use."""
    index = _cache.get(id(config))
    if index is not None and index.config is config:
        return index
    index = SnapshotIndex(config)
    with _cache_lock:
        if len(_cache) >= _INDEX_CACHE_SIZE:
            # Drop the oldest entry (dicts keep insertion order).
            _cache.pop(next(iter(_cache)))
        _cache[id(config)] = index
    return index
