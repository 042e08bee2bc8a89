"""The outcome of routing: ``RoutingResult`` and the actionable error it carries.

A reject's ``message`` is a readable summary grouped by reconciler (pipeline
order, per attempted model), and ``suggested_actions`` is a deduplicated list
ordered by how many excluded backends an action would address (most first),
then by the pipeline position of the reconciler that suggested it, then by
first appearance; at most ``MAX_SUGGESTED_ACTIONS`` are kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from routing.pipeline.budgets import estimate_cost
from routing.pipeline.intent import (
    MODEL_NOT_FOUND,
    NO_VIABLE_BACKEND,
    PIPELINE_ERROR,
    Constraints,
    Requirements,
    RoutingIntent,
    RoutingRequest,
    TraceEntry,
)
from routing.pipeline.types import (
    BackendSnapshot,
    Outcome,
    Rejection,
)

MAX_SUGGESTED_ACTIONS = 5
MAX_BACKENDS_PER_GROUP = 5


@dataclass(frozen=True, slots=True)
class RoutingResult:
    """The decision for one request: route, queue or reject, and why.

    ``model`` is the resolved model of the final attempt; ``trace`` holds the
    entries of every attempt (each entry names its model); ``annotations`` are
    the final attempt's. ``requirements`` and ``constraints`` are None only in
    a ``failure_result`` (the pipeline failed before working them out).

    ``to_dict()`` is the JSON the API answers with; the ``*_json()`` methods
    are its pieces, which the decision log stores. The costly pieces (trace,
    annotations, error) are built once per result and shared by every call and
    by the stored row: read them, never change them.
    """

    outcome: Outcome
    requested_model: str
    model: str
    # The rest defaults to nothing known (a ``failure_result``).
    backend: BackendSnapshot | None = None
    score: float | None = None
    reason: str | None = None
    estimated_cost_usd: float | None = None
    estimated_wait_ms: int | None = None
    fallback_backend: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    rejections: tuple[Rejection, ...] = ()
    suggested_actions: tuple[str, ...] = ()
    requirements: Requirements | None = None
    constraints: Constraints | None = None
    matched_policies: tuple[str, ...] = ()
    annotations: Mapping[str, Any] = field(default_factory=dict)
    trace: tuple[TraceEntry, ...] = ()
    warnings: tuple[str, ...] = ()
    excluded_by: tuple[str, ...] = ()
    fallback_used: bool = False
    models_tried: tuple[str, ...] = ()
    duration_us: float = 0.0
    #: The JSON pieces built so far, by name (a cache, not part of the value).
    _json: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def backend_name(self) -> str | None:
        """Name of the chosen (route) or awaited (queue) backend."""
        return self.backend.name if self.backend is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (only str/int/float/bool/None/list/dict)."""
        data: dict[str, Any] = {
            "outcome": self.outcome.value,
            "requested_model": self.requested_model,
            "model": self.model,
        }
        backend = self.backend_json()
        if backend is not None:
            data["backend"] = backend
            data["score"] = self.score
            data["reason"] = self.reason
            data["estimated_cost_usd"] = self.estimated_cost_usd
        if self.outcome is Outcome.QUEUE:
            data["estimated_wait_ms"] = self.estimated_wait_ms
            data["fallback_backend"] = self.fallback_backend
        error = self.error_json()
        if error is not None:
            data["error"] = error
        data["requirements"] = self.requirements_json()
        data["constraints"] = self.constraints_json()
        data["matched_policies"] = list(self.matched_policies)
        data["fallback_used"] = self.fallback_used
        data["models_tried"] = list(self.models_tried)
        data["annotations"] = self.annotations_json()
        data["trace"] = self.trace_json()
        data["warnings"] = list(self.warnings)
        data["pipeline_duration_us"] = round(self.duration_us, 1)
        return data

    def backend_json(self) -> dict[str, Any] | None:
        """The chosen or awaited backend as the API shows it (None for a reject)."""
        backend = self.backend
        if self.outcome is Outcome.REJECT or backend is None:
            return None
        return {
            "name": backend.name,
            "base_url": backend.base_url,
            "privacy_zone": backend.privacy_zone,
            "capability_tier": backend.capability_tier,
        }

    def error_json(self) -> dict[str, Any] | None:
        """A reject's error in the API's error shape (None otherwise); ``fields``
        is always empty here: a routing reject blames no request field."""
        if self.outcome is not Outcome.REJECT:
            return None
        error: dict[str, Any] | None = self._json.get("error")
        if error is None:
            error = self._json["error"] = {
                "type": self.error_type,
                "message": self.error_message,
                "fields": {},
                "rejections": [r.to_dict() for r in self.rejections],
                "suggested_actions": list(self.suggested_actions),
            }
        return error

    def requirements_json(self) -> dict[str, Any]:
        return self.requirements.to_dict() if self.requirements is not None else {}

    def constraints_json(self) -> dict[str, Any]:
        return self.constraints.to_dict() if self.constraints is not None else {}

    def annotations_json(self) -> dict[str, Any]:
        data: dict[str, Any] | None = self._json.get("annotations")
        if data is None:
            data = self._json["annotations"] = jsonable(self.annotations)
        return data

    def trace_json(self) -> list[dict[str, Any]]:
        trace: list[dict[str, Any]] | None = self._json.get("trace")
        if trace is None:
            trace = self._json["trace"] = [entry.to_dict() for entry in self.trace]
        return trace


def jsonable(value: Any) -> Any:
    """Convert annotation values to plain JSON types (unknown objects -> str)."""
    kind = type(value)
    # Exact-type checks first: annotations are mostly dicts of str/float/int
    # and this runs on every routed request.
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        # Scores and factors are computed unrounded on the hot path.
        return round(value, 8) if math.isfinite(value) else None
    if kind is dict:
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [jsonable(v) for v in value]
    return _jsonable_other(value)


def _jsonable_other(value: Any) -> Any:
    """``jsonable`` for subclasses, enums, sets, mappings and dates."""
    if isinstance(value, float):
        return round(value, 8) if math.isfinite(value) else None
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, str | int):
        return str(value) if isinstance(value, str) else int(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [jsonable(v) for v in items]
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


# -- building the result ---------------------------------------------------------


def build_result(
    attempts: Sequence[RoutingIntent], *, duration_us: float, hint: str | None = None
) -> RoutingResult:
    """Fold one or more attempts (primary, then fallbacks) into a result;
    ``hint`` is added to a reject's message and suggested actions."""
    first = attempts[0]
    final = attempts[-1]
    outcome = final.outcome or Outcome.REJECT
    if len(attempts) == 1:
        trace = tuple(final.trace)
        warnings = list(dict.fromkeys(final.warnings))
    else:
        trace = tuple(entry for attempt in attempts for entry in attempt.trace)
        warnings = list(dict.fromkeys([w for a in attempts for w in a.warnings]))
    models_tried = tuple([attempt.model for attempt in attempts])
    fallback_used = len(attempts) > 1
    if fallback_used and outcome is not Outcome.REJECT:
        warnings.append(
            f"Model '{first.model}' had no viable backend; used fallback model "
            f"'{final.model}'."
        )
    excluded_by = (
        final.excluded_by
        if len(attempts) == 1
        else tuple(dict.fromkeys([name for a in attempts for name in a.excluded_by]))
    )

    error_type: str | None = None
    error_message: str | None = None
    suggested: tuple[str, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    cost: float | None = None
    backend = final.selected if outcome is not Outcome.REJECT else None
    if backend is not None:
        offer = final.offers.get(backend.name)
        req = final.requirements
        cost = (
            round(
                estimate_cost(
                    offer, req.estimated_input_tokens, req.estimated_output_tokens
                ),
                8,
            )
            if offer
            else None
        )
    if outcome is Outcome.REJECT:
        rejections = tuple(r for attempt in attempts for r in attempt.rejections)
        error_type, error_message, suggested = _build_error(attempts, rejections, hint)

    return RoutingResult(
        outcome=outcome,
        requested_model=first.requested_model,
        model=final.model,
        backend=backend,
        score=final.score if backend is not None else None,
        reason=final.reason if backend is not None else None,
        estimated_cost_usd=cost,
        estimated_wait_ms=final.estimated_wait_ms,
        fallback_backend=final.fallback_backend,
        error_type=error_type,
        error_message=error_message,
        rejections=rejections,
        suggested_actions=suggested,
        requirements=final.requirements,
        constraints=final.constraints,
        matched_policies=tuple([p.name for p in final.matched_policies]),
        annotations=final.annotations,
        trace=trace,
        warnings=tuple(warnings),
        excluded_by=excluded_by,
        fallback_used=fallback_used,
        models_tried=models_tried,
        duration_us=duration_us,
    )


def failure_result(request: RoutingRequest, exc_name: str) -> RoutingResult:
    """A ``pipeline_error`` reject for a failure outside any reconciler (which
    the runner cannot attribute, so nothing about the request is known)."""
    return RoutingResult(
        outcome=Outcome.REJECT,
        requested_model=request.model,
        model=request.model,
        error_type=PIPELINE_ERROR,
        error_message=f"The routing pipeline failed ({exc_name}); the request was "
        "not routed. Operators: see the server log.",
        suggested_actions=("Retry; if it persists, report the request id.",),
    )


def _build_error(
    attempts: Sequence[RoutingIntent],
    rejections: tuple[Rejection, ...],
    hint: str | None = None,
) -> tuple[str, str, tuple[str, ...]]:
    """(error type, readable message, suggested actions) for a reject."""
    final = attempts[-1]
    types = [a.error_type or NO_VIABLE_BACKEND for a in attempts]
    if PIPELINE_ERROR in types:
        error_type = PIPELINE_ERROR
    elif all(t == MODEL_NOT_FOUND for t in types):
        error_type = MODEL_NOT_FOUND
    else:
        error_type = NO_VIABLE_BACKEND

    lines: list[str] = []
    first = attempts[0]
    requested = first.requested_model
    if error_type == MODEL_NOT_FOUND and len(attempts) == 1:
        lines.append(final.error_message or f"Model '{requested}' was not found.")
    elif error_type == PIPELINE_ERROR:
        failed = next(a for a in attempts if a.error_type == PIPELINE_ERROR)
        lines.append(failed.error_message or "The routing pipeline failed.")
    else:
        resolved = f" (resolved to '{first.model}')" if first.model != requested else ""
        lines.append(f"No viable backend for model '{requested}'{resolved}.")
        if len(attempts) > 1:
            tried = ", ".join(f"'{a.model}'" for a in attempts)
            lines.append(f"Models tried in order: {tried}.")
    for attempt in attempts:
        prefix = f"[{attempt.model}] " if len(attempts) > 1 else ""
        if attempt.error_type == MODEL_NOT_FOUND and len(attempts) > 1:
            lines.append(f"- {prefix}{attempt.error_message}")
        for reconciler, group in _group_by_reconciler(attempt.rejections):
            noun = "backend" if len(group) == 1 else "backends"
            lines.append(f"- {prefix}{reconciler} excluded {len(group)} {noun}:")
            lines.extend(
                f"    {r.backend}: {r.reason}" for r in group[:MAX_BACKENDS_PER_GROUP]
            )
            more = len(group) - MAX_BACKENDS_PER_GROUP
            if more > 0:
                lines.append(f"    ... and {more} more")
    actions = list(_suggested_actions(attempts, rejections))
    if hint:
        lines.append(hint)
        actions.insert(0 if error_type == MODEL_NOT_FOUND else 1, hint)
    return error_type, "\n".join(lines), tuple(actions[:MAX_SUGGESTED_ACTIONS])


def _group_by_reconciler(
    rejections: Sequence[Rejection],
) -> list[tuple[str, list[Rejection]]]:
    groups: dict[str, list[Rejection]] = {}
    for rejection in rejections:
        groups.setdefault(rejection.reconciler, []).append(rejection)
    return list(groups.items())


def _suggested_actions(
    attempts: Sequence[RoutingIntent], rejections: tuple[Rejection, ...]
) -> tuple[str, ...]:
    position: dict[str, int] = {}
    for attempt in attempts:
        for entry in attempt.trace:
            position.setdefault(entry.reconciler, len(position))
    counts: dict[str, int] = {}
    rank: dict[str, tuple[int, int]] = {}
    for order, rejection in enumerate(rejections):
        action = rejection.suggested_action
        if not action:
            continue
        counts[action] = counts.get(action, 0) + 1
        rank.setdefault(action, (position.get(rejection.reconciler, 999), order))
    actions = sorted(counts, key=lambda a: (-counts[a], *rank[a]))
    for attempt in attempts:
        if attempt.error_type == MODEL_NOT_FOUND:
            model = attempt.requested_model
            actions.append(
                f"Fix alias '{model}' so it resolves to a served model."
                if attempt.alias_error
                else f"Check the model name, or add a backend or an alias serving "
                f"'{model}'."
            )
        elif attempt.error_type == PIPELINE_ERROR:
            actions.insert(
                0,
                "Check the server logs for the failing reconciler; it is fail-closed, "
                "so requests are rejected while it fails.",
            )
    deduped = list(dict.fromkeys(actions))
    return tuple(deduped[:MAX_SUGGESTED_ACTIONS])
