"""Round-robin positions in the shared state: one rotation for the deployment.

The pipeline's ``InMemoryCounterStore`` turns per process, so with several
workers (or nodes) round robin is not round robin. ``SharedCounterStore``
keeps each model's position in ``routing.shared_state`` (Redis ``INCR`` when
``NEXUS_REDIS_URL`` is set, else one UPSERT on the embedded SQLite file),
so every process and node takes the next turn. ``routing.adapters`` passes it
to the pipeline; the pipeline itself stays free of Django.
"""

from __future__ import annotations

from routing.shared_state import shared_state


class SharedCounterStore:
    """A ``CounterStore`` (0, 1, 2, ... per key) shared by every process.

    The store is looked up on each call, so a change of ``NEXUS_REDIS_URL`` or
    of the state file (tests) takes effect at once. Counters never expire.
    """

    #: Keys are kept apart from other counters in the shared state.
    PREFIX = "rr:"

    def next(self, key: str) -> int:
        """Return the current value for ``key`` and advance it by one."""
        return shared_state().incr(self.PREFIX + key) - 1
