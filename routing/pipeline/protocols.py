"""The extension points: what a reconciler and a scorer are.

Both are protocols: any object with these members plugs in (see
docs/pipeline.md), and ``isinstance(obj, Reconciler)`` / ``isinstance(obj,
Scorer)`` check the members. This module stays interpreted in the compiled
build (``routing.pipeline_build``): mypyc cannot compile runtime-checkable
protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from routing.pipeline.intent import RoutingIntent
from routing.pipeline.types import BackendSnapshot, ErrorPolicy


@runtime_checkable
class Reconciler(Protocol):
    """One stage of the pipeline.

    ``name`` is unique within a pipeline (it keys the trace, ``*_excluded``
    annotations and ``excluded_by``). ``error_policy`` says what a raise means.
    ``reconcile`` narrows the intent: ``intent.exclude(backend, reason,
    suggested_action)``, ``intent.annotate(key, json_value)``,
    ``intent.warn(text)``. It must be thread-safe: one instance serves every
    request.
    """

    @property
    def name(self) -> str:
        """Unique stage name."""
        ...

    @property
    def error_policy(self) -> ErrorPolicy:
        """``fail_open`` (skip on error) or ``fail_closed`` (reject on error)."""
        ...

    def reconcile(self, intent: RoutingIntent) -> None:
        """Narrow, annotate or decide ``intent``."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """One scoring signal of the ``smart`` strategy."""

    @property
    def name(self) -> str:
        """Unique scorer name (the key in ``score_breakdown``)."""
        ...

    def score(
        self, candidates: Sequence[BackendSnapshot], intent: RoutingIntent
    ) -> Mapping[str, float]:
        """Candidate name -> score in [0, 1], higher better."""
        ...
