"""Round-robin counters: a tiny protocol so Django can plug in a shared store.

The in-memory store is per process (pure-Python use and tests). Any object
with a ``next(key) -> int`` method can be passed as
``PipelineSettings.counter_store``; the Django app passes
``routing.shared_counters.SharedCounterStore`` so the rotation spans every
process and node.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable


@runtime_checkable
class CounterStore(Protocol):
    """Hands out increasing integers per key (0, 1, 2, ...)."""

    def next(self, key: str) -> int:
        """Return the current value for ``key`` and advance it by one."""
        ...


class InMemoryCounterStore:
    """A thread-safe, per-process ``CounterStore``."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def next(self, key: str) -> int:
        """Return the current value for ``key`` and advance it by one."""
        with self._lock:
            value = self._counts.get(key, 0)
            self._counts[key] = value + 1
            return value
