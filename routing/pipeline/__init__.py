"""Nexus routing pipeline: pure Python, no Django.

Reading order follows the pipeline: ``types`` and ``rules`` (vocabulary),
``intent`` (request, requirements, constraints, the mutable intent), ``index``
(the per-snapshot index; every cache lives there), ``analysis`` (stage-1 rules),
``reconcilers`` (request_analyzer -> privacy -> budget -> capability ->
selection, with ``budgets`` and ``scorers``), ``decision`` (the result and its
errors), ``base`` (protocol, runner with fallbacks, builder).
"""

from __future__ import annotations

from routing.pipeline.base import (
    PipelineBuilder,
    PipelineConfigError,
    ReconcilerPipeline,
    default_pipeline,
    default_reconcilers,
    load_reconciler,
)
from routing.pipeline.counters import CounterStore, InMemoryCounterStore
from routing.pipeline.decision import RoutingResult, failure_result
from routing.pipeline.intent import (
    MODEL_NOT_FOUND,
    NO_VIABLE_BACKEND,
    PIPELINE_ERROR,
    Constraints,
    Requirements,
    RoutingContext,
    RoutingIntent,
    RoutingRequest,
    TraceEntry,
)
from routing.pipeline.protocols import Reconciler, Scorer
from routing.pipeline.reconcilers import DEFAULT_ORDER
from routing.pipeline.scorers import BackendScorer, load_scorer, parse_scorers
from routing.pipeline.settings import (
    DEFAULT_SCORERS,
    DEFAULT_WEIGHTS,
    PipelineSettings,
    SettingsError,
)
from routing.pipeline.types import Rejection

__all__ = [
    "DEFAULT_ORDER",
    "DEFAULT_SCORERS",
    "DEFAULT_WEIGHTS",
    "MODEL_NOT_FOUND",
    "NO_VIABLE_BACKEND",
    "PIPELINE_ERROR",
    "Constraints",
    "BackendScorer",
    "CounterStore",
    "InMemoryCounterStore",
    "PipelineBuilder",
    "PipelineConfigError",
    "PipelineSettings",
    "Reconciler",
    "ReconcilerPipeline",
    "Rejection",
    "Requirements",
    "RoutingContext",
    "RoutingIntent",
    "RoutingRequest",
    "RoutingResult",
    "Scorer",
    "SettingsError",
    "TraceEntry",
    "default_pipeline",
    "default_reconcilers",
    "failure_result",
    "load_reconciler",
    "load_scorer",
    "parse_scorers",
]
