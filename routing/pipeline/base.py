"""The pipeline machinery: the ``Reconciler`` protocol, the runner, the builder.

``ReconcilerPipeline.route`` runs the reconcilers for the requested model and,
when that attempt is a ``no_viable_backend`` or ``model_not_found`` reject (not
an alias error, and only while every matched policy allows fallbacks), for
each model of its fallback chain (``fallback_chain``), carrying the request's
constraints and every policy matched so far into each attempt.

A reconciler is any object with a ``name``, an ``error_policy`` and a
``reconcile(intent)`` method. It may only narrow the intent (``exclude``),
annotate it and add warnings; ``selection`` decides. The runner executes the
reconcilers in order, times each one and records a ``TraceEntry``:

- a fail-closed reconciler that raises turns the attempt into a
  ``pipeline_error`` reject naming the reconciler;
- a fail-open reconciler that raises is discarded: its exclusions, annotations
  and warnings are rolled back, the error is recorded in its trace entry plus a
  warning, and the pipeline continues with the candidates it started with;
- once an attempt is rejected (e.g. ``model_not_found``), later reconcilers do
  not run.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, cast

from routing.pipeline.decision import RoutingResult, build_result
from routing.pipeline.index import index_for
from routing.pipeline.intent import (
    MODEL_NOT_FOUND,
    NO_VIABLE_BACKEND,
    PIPELINE_ERROR,
    RoutingContext,
    RoutingIntent,
    RoutingRequest,
    TraceEntry,
    new_tuple,
)
from routing.pipeline.protocols import Reconciler
from routing.pipeline.reconcilers import DEFAULT_ORDER
from routing.pipeline.reconcilers.budget import BudgetReconciler
from routing.pipeline.reconcilers.capability import CapabilityReconciler
from routing.pipeline.reconcilers.privacy import PrivacyReconciler
from routing.pipeline.reconcilers.request_analyzer import RequestAnalyzer
from routing.pipeline.reconcilers.selection import SelectionReconciler
from routing.pipeline.rules import policy_names
from routing.pipeline.settings import PipelineSettings
from routing.pipeline.suggestions import suggest_alternatives
from routing.pipeline.types import ErrorPolicy, Outcome

SELECTION = "selection"


class PipelineConfigError(ValueError):
    """The pipeline cannot be built as configured; the message says why."""


def _check(reconciler: object, where: str = "") -> Reconciler:
    label = where or repr(reconciler)
    name = getattr(reconciler, "name", None)
    if not isinstance(name, str) or not name:
        raise PipelineConfigError(f"{label} is not a reconciler: it has no str 'name'.")
    if not callable(getattr(reconciler, "reconcile", None)):
        raise PipelineConfigError(
            f"{label} ({name!r}) is not a reconciler: it has no reconcile(intent) "
            "method."
        )
    policy = getattr(reconciler, "error_policy", None)
    try:
        ErrorPolicy(str(policy))
    except ValueError:
        raise PipelineConfigError(
            f"Reconciler {name!r} has error_policy {policy!r}; use "
            "ErrorPolicy.FAIL_OPEN or ErrorPolicy.FAIL_CLOSED."
        ) from None
    return cast(Reconciler, reconciler)


class ReconcilerPipeline:
    """An ordered, validated list of reconcilers that routes requests.

    Raises ``PipelineConfigError`` when it is empty, a member is not a
    reconciler, a name repeats, or the last one is not ``selection``.
    Thread-safe: build once, share across requests.
    """

    __slots__ = ("_by_name", "_policies", "_reconcilers", "_stages", "settings")

    def __init__(
        self,
        reconcilers: Sequence[Reconciler],
        settings: PipelineSettings | None = None,
    ) -> None:
        checked = [_check(r) for r in reconcilers]
        if not checked:
            raise PipelineConfigError(
                "The pipeline has no reconcilers; it needs at least 'selection'."
            )
        names = [r.name for r in checked]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PipelineConfigError(
                f"Reconciler names must be unique; repeated: {', '.join(duplicates)}."
            )
        if names[-1] != SELECTION:
            raise PipelineConfigError(
                f"The last reconciler must be '{SELECTION}' (it makes the decision); "
                f"the pipeline ends with '{names[-1]}'. Order: {' -> '.join(names)}."
            )
        self._reconcilers = tuple(checked)
        self._policies = tuple(ErrorPolicy(r.error_policy) for r in checked)
        self._by_name = {r.name: r for r in checked}
        # Per stage, what the runner needs on every request, computed once.
        self._stages = tuple(
            _Stage(
                r.name,
                r.reconcile,
                p,
                p is ErrorPolicy.FAIL_OPEN,
                f"{r.name}_excluded" if r.name != SELECTION else None,
            )
            for r, p in zip(checked, self._policies, strict=True)
        )
        self.settings = settings or PipelineSettings()

    # -- introspection ----------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """Reconciler names in execution order."""
        return tuple(self._by_name)

    @property
    def reconcilers(self) -> tuple[Reconciler, ...]:
        """The reconcilers in execution order."""
        return self._reconcilers

    def get(self, name: str) -> Reconciler:
        """The reconciler called ``name`` (KeyError when absent)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"No reconciler {name!r}; the pipeline has {', '.join(self.names)}."
            ) from None

    def describe(self) -> list[dict[str, str]]:
        """``[{"name": ..., "error_policy": ...}, ...]`` in execution order."""
        return [
            {"name": r.name, "error_policy": p.value}
            for r, p in zip(self._reconcilers, self._policies, strict=True)
        ]

    def describe_scorers(self) -> list[dict[str, Any]]:
        """``[{"name": ..., "weight": ...}, ...]``: the smart strategy's scorers
        in order (empty when ``selection`` is a custom one without scorers)."""
        describe = getattr(self._by_name[SELECTION], "describe_scorers", None)
        return list(describe()) if callable(describe) else []

    def __repr__(self) -> str:
        return f"ReconcilerPipeline({' -> '.join(self.names)})"

    # -- running ------------------------------------------------------------------

    def route(self, request: RoutingRequest, context: RoutingContext) -> RoutingResult:
        """Route ``request``: the requested model, then its fallback chain if that
        attempt is a ``no_viable_backend`` or ``model_not_found`` reject.

        Each fallback attempt carries the request's constraints and every policy
        matched so far, so a fallback can never escape a constraint.
        """
        start = time.perf_counter_ns()
        index = index_for(context.config)
        primary = RoutingIntent(request, context, index)
        self.execute(primary)
        attempts = [primary]
        if _should_fall_back(primary):
            tried = {primary.requested_model, primary.model}
            inherited = primary.matched_policies
            for model in fallback_chain(primary):
                if model in tried:
                    continue
                attempt = RoutingIntent(
                    request,
                    context,
                    index,
                    requested_model=model,
                    inherited_policies=inherited,
                )
                self.execute(attempt)
                attempts.append(attempt)
                tried.update((attempt.requested_model, attempt.model))
                inherited = attempt.matched_policies
                if not _should_fall_back(attempt):
                    break
        duration_us = (time.perf_counter_ns() - start) / 1000.0
        final = attempts[-1]
        hint = (
            suggest_alternatives(attempts) if final.outcome is Outcome.REJECT else None
        )
        return build_result(attempts, duration_us=duration_us, hint=hint)

    def execute(self, intent: RoutingIntent) -> None:
        """Run every reconciler on one attempt, recording the trace."""
        perf = time.perf_counter_ns
        reject = Outcome.REJECT
        names = intent.candidate_names()
        for stage in self._stages:
            if intent.outcome is reject:
                break
            name = stage.name
            intent.begin_stage(name)
            version = intent.version
            mark = intent.log_position
            saved = intent.checkpoint() if stage.fail_open else None
            error: str | None = None
            start = perf()
            try:
                stage.reconcile(intent)
            except Exception as exc:  # noqa: BLE001 - the error policy decides
                error = f"{type(exc).__name__}: {exc}"[:500]
            duration_us = (perf() - start) / 1000.0
            if error is not None and saved is not None:
                intent.restore(saved)
                intent.warn(
                    f"Reconciler '{name}' failed and was skipped (fail-open): {error}"
                )
            elif error is not None:
                intent.reject(
                    PIPELINE_ERROR,
                    f"Reconciler '{name}' failed ({error}); it is fail-closed, "
                    "so the request was rejected.",
                )
            after = intent.candidate_names() if intent.version != version else names
            excluded = intent.rejections_since(mark)
            key = stage.excluded_key
            if key is not None and key not in intent.annotations:
                intent.annotate(key, intent.stage_reasons)
            intent.trace.append(
                new_tuple(
                    TraceEntry,
                    (
                        intent.model,
                        name,
                        stage.policy,
                        names,
                        after,
                        excluded,
                        duration_us,
                        error,
                    ),
                )
            )
            names = after
        if intent.outcome is None:
            intent.reject(
                PIPELINE_ERROR,
                "The pipeline ended without a decision; 'selection' must decide.",
            )


def fallback_chain(intent: RoutingIntent) -> tuple[str, ...]:
    """Fallback models configured for the requested, an alias hop or resolved name."""
    fallbacks = intent.context.config.fallbacks
    for name in policy_names(intent.requested_model, intent.alias_chain, intent.model):
        chain = fallbacks.get(name)
        if chain:
            return tuple(chain)
    return ()


def _should_fall_back(attempt: RoutingIntent) -> bool:
    """A no-viable-backend or model-not-found reject (not an alias error) whose
    matched policies all allow fallbacks."""
    return (
        attempt.outcome is Outcome.REJECT
        and attempt.error_type in (NO_VIABLE_BACKEND, MODEL_NOT_FOUND)
        and not attempt.alias_error
        and all(policy.fallback_allowed for policy in attempt.matched_policies)
    )


class _Stage(NamedTuple):
    name: str
    reconcile: Callable[[RoutingIntent], None]
    policy: ErrorPolicy
    fail_open: bool
    excluded_key: str | None  # ``<name>_excluded`` (None for selection)


def default_reconcilers(settings: PipelineSettings | None = None) -> list[Reconciler]:
    """Fresh instances of the default reconcilers, in ``DEFAULT_ORDER``."""
    settings = settings or PipelineSettings()
    reconcilers: list[Reconciler] = [
        RequestAnalyzer(default_output_tokens=settings.default_output_tokens),
        PrivacyReconciler(),
        BudgetReconciler(),
        CapabilityReconciler(),
        SelectionReconciler(settings),
    ]
    assert tuple(r.name for r in reconcilers) == DEFAULT_ORDER
    return reconcilers


def default_pipeline(
    settings: PipelineSettings | None = None, extra: Iterable[Reconciler] = ()
) -> ReconcilerPipeline:
    """The default pipeline; ``extra`` reconcilers run just before selection."""
    builder = PipelineBuilder(settings).with_defaults()
    for reconciler in extra:
        builder.add(reconciler, before=SELECTION)
    return builder.build()


class PipelineBuilder:
    """Builds a pipeline step by step; ``build()`` validates it.

    ``PipelineBuilder(settings).with_defaults().add(MyReconciler(),
    before="selection").build()``
    """

    def __init__(self, settings: PipelineSettings | None = None) -> None:
        self.settings = settings or PipelineSettings()
        self._reconcilers: list[Reconciler] = []

    def with_defaults(self) -> PipelineBuilder:
        """Append the default reconcilers."""
        for reconciler in default_reconcilers(self.settings):
            self.add(reconciler)
        return self

    def _position(self, name: str) -> int:
        for i, reconciler in enumerate(self._reconcilers):
            if reconciler.name == name:
                return i
        present = ", ".join(r.name for r in self._reconcilers) or "none"
        raise PipelineConfigError(
            f"No reconciler named {name!r} to position against (present: {present})."
        )

    def add(
        self,
        reconciler: Reconciler,
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> PipelineBuilder:
        """Add ``reconciler`` at the end, or before/after the named one."""
        checked = _check(reconciler)
        if before is not None and after is not None:
            raise PipelineConfigError("Give 'before' or 'after', not both.")
        if before is not None:
            self._reconcilers.insert(self._position(before), checked)
        elif after is not None:
            self._reconcilers.insert(self._position(after) + 1, checked)
        else:
            self._reconcilers.append(checked)
        return self

    def remove(self, name: str) -> PipelineBuilder:
        """Remove the reconciler called ``name``."""
        del self._reconcilers[self._position(name)]
        return self

    def replace(self, name: str, reconciler: Reconciler) -> PipelineBuilder:
        """Put ``reconciler`` in the place of the one called ``name``."""
        self._reconcilers[self._position(name)] = _check(reconciler)
        return self

    def build(self) -> ReconcilerPipeline:
        """Validate and return the pipeline."""
        return ReconcilerPipeline(self._reconcilers, self.settings)


def load_reconciler(dotted_path: str) -> Reconciler:
    """Import ``pkg.module.Name`` and return a reconciler instance.

    ``Name`` may be a class (instantiated with no arguments), a factory
    callable returning a reconciler, or a reconciler instance. Raises
    ``PipelineConfigError`` with a message naming the path otherwise.
    """
    module_path, _, attr = dotted_path.rpartition(".")
    if not module_path or not attr:
        raise PipelineConfigError(
            f"{dotted_path!r} is not a dotted path like 'package.module.ClassName'."
        )
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise PipelineConfigError(
            f"Cannot import module {module_path!r} for reconciler {dotted_path!r}: "
            f"{exc}"
        ) from exc
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise PipelineConfigError(
            f"Module {module_path!r} has no attribute {attr!r} (from {dotted_path!r})."
        ) from None
    obj: object = target
    is_instance = not isinstance(target, type) and hasattr(target, "reconcile")
    if callable(target) and not is_instance:
        factory: Callable[[], object] = target
        try:
            obj = factory()
        except Exception as exc:
            raise PipelineConfigError(
                f"Could not create reconciler {dotted_path!r} with no arguments: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return _check(obj, where=f"{dotted_path!r}")
