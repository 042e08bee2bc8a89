"""Turn a decision payload (recorded or dry-run) into what the detail view shows.

The same view model serves the decision page, the simulator and the re-run,
so all three render one template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from routing.explorer.numbers import number

REQUEST_SOURCES = {"body": "request body", "header": "request header"}


def source_label(source: str) -> str:
    """``policy:x`` -> ``policy x``; ``header`` -> ``request header``."""
    if source.startswith("policy:"):
        return f"policy {source.removeprefix('policy:')}"
    if source == "body+header":
        return "request body and header"
    return REQUEST_SOURCES.get(source, source)


@dataclass(frozen=True)
class ConstraintRow:
    name: str
    value: Any
    sources: list[str]


@dataclass(frozen=True)
class Exclusion:
    backend: str
    reconciler: str
    model: str
    reason: str
    suggested_action: str


@dataclass(frozen=True)
class TraceRow:
    reconciler: str
    model: str
    error_policy: str
    before: list[str]
    after: list[str]
    excluded: list[dict[str, str]]
    duration_us: float
    error: str | None

    @property
    def removed(self) -> int:
        return len(self.before) - len(self.after)


@dataclass(frozen=True)
class Candidate:
    backend: str
    score: float | None
    breakdown: dict[str, Any]
    estimated_cost_usd: Any
    chosen: bool


@dataclass
class DecisionView:
    payload: dict[str, Any]
    outcome: str
    requested_model: str
    model: str
    backend: str
    requirements: dict[str, Any]
    constraints: list[ConstraintRow]
    matched_policies: list[str]
    annotations: list[tuple[str, str]]
    trace: list[TraceRow]
    exclusions: list[Exclusion]
    candidates: list[Candidate]
    warnings: list[str]
    budget_status: str
    models_tried: list[str]
    fallback_used: bool
    error: dict[str, Any] = field(default_factory=dict)


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def decision_view(payload: dict[str, Any]) -> DecisionView:
    """A view model over a ``RoutingResult.to_dict()``-shaped payload."""
    annotations = payload.get("annotations") or {}
    backend = (payload.get("backend") or {}).get("name") or payload.get(
        "backend_name", ""
    )
    constraints = [
        ConstraintRow(
            name=name,
            value=entry.get("value"),
            sources=[source_label(s) for s in entry.get("sources") or []],
        )
        for name, entry in (payload.get("constraints") or {}).items()
        if isinstance(entry, dict)
    ]
    trace = [
        TraceRow(
            reconciler=entry.get("reconciler", ""),
            model=entry.get("model", ""),
            error_policy=entry.get("error_policy", ""),
            before=list(entry.get("candidates_before") or []),
            after=list(entry.get("candidates_after") or []),
            excluded=list(entry.get("excluded") or []),
            duration_us=float(entry.get("duration_us") or 0),
            error=entry.get("error"),
        )
        for entry in payload.get("trace") or []
    ]
    exclusions = [
        Exclusion(
            backend=item.get("backend", ""),
            reconciler=row.reconciler,
            model=row.model,
            reason=item.get("reason", ""),
            suggested_action=item.get("suggested_action", ""),
        )
        for row in trace
        for item in row.excluded
    ]
    scores = annotations.get("scores") or {}
    breakdowns = annotations.get("score_breakdown") or {}
    costs = annotations.get("estimated_cost_usd") or {}
    names = list(dict.fromkeys([*scores, *costs]))
    candidates = sorted(
        (
            Candidate(
                backend=name,
                score=scores.get(name),
                breakdown=breakdowns.get(name) or {},
                estimated_cost_usd=costs.get(name),
                chosen=name == backend,
            )
            for name in names
        ),
        key=lambda c: (c.score is None, -(c.score or 0), c.backend),
    )
    return DecisionView(
        payload=payload,
        outcome=payload.get("outcome", ""),
        requested_model=payload.get("requested_model", ""),
        model=payload.get("model", ""),
        backend=backend,
        requirements=payload.get("requirements") or {},
        constraints=constraints,
        matched_policies=list(payload.get("matched_policies") or []),
        annotations=[(key, _pretty(value)) for key, value in annotations.items()],
        trace=trace,
        exclusions=exclusions,
        candidates=candidates,
        warnings=list(payload.get("warnings") or []),
        budget_status=str(annotations.get("budget_status") or ""),
        models_tried=list(payload.get("models_tried") or []),
        fallback_used=bool(payload.get("fallback_used")),
        error=payload.get("error") or {},
    )


@dataclass(frozen=True)
class Change:
    what: str
    before: str
    after: str


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


def decision_changes(before: DecisionView, after: DecisionView) -> list[Change]:
    """What differs between a recorded decision and its re-run, in reading order."""
    changes: list[Change] = []

    def compare(what: str, old: Any, new: Any) -> None:
        if _fmt(old) != _fmt(new):
            changes.append(Change(what, _fmt(old), _fmt(new)))

    compare("outcome", before.outcome, after.outcome)
    compare("resolved model", before.model, after.model)
    compare("backend", before.backend, after.backend)
    compare("models tried", before.models_tried, after.models_tried)
    compare("budget status", before.budget_status, after.budget_status)
    old_constraints = {c.name: c for c in before.constraints}
    for row in after.constraints:
        old = old_constraints.get(row.name)
        compare(
            f"constraint {row.name}",
            f"{_fmt(old.value)} ({_fmt(old.sources)})" if old else None,
            f"{_fmt(row.value)} ({_fmt(row.sources)})",
        )
    old_ex = {(e.backend, e.reconciler): e.reason for e in before.exclusions}
    new_ex = {(e.backend, e.reconciler): e.reason for e in after.exclusions}
    for key in sorted(set(old_ex) | set(new_ex)):
        compare(f"{key[0]} excluded by {key[1]}", old_ex.get(key), new_ex.get(key))
    old_scores = {c.backend: c.score for c in before.candidates}
    new_scores = {c.backend: c.score for c in after.candidates}
    for name in sorted(set(old_scores) | set(new_scores)):
        compare(f"score of {name}", old_scores.get(name), new_scores.get(name))
    return changes
