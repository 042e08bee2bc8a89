"""Turn a decision payload (recorded or dry-run) into what the detail view shows,
and a backend into its row of the fleet table.

The same view model serves the decision page, the simulator and the re-run,
so all three render one template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from routing.explorer.numbers import number
from routing.models import Backend
from routing.services.passive_health import HALF_OPEN

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
class TraceGroup:
    """The trace rows of one model tried (the primary, then each fallback)."""

    model: str
    label: str
    rows: list[TraceRow]
    ended: str
    last: bool


@dataclass(frozen=True)
class Candidate:
    backend: str
    score: float | None
    breakdown: dict[str, Any]
    estimated_cost_usd: Any
    chosen: bool
    weights: dict[str, Any] = field(default_factory=dict)

    @property
    def factors(self) -> list[tuple[str, Any, Any]]:
        """(scorer, value, its weight or None) for each scored factor."""
        return [(k, v, self.weights.get(k)) for k, v in self.breakdown.items()]


#: What each attempt outcome (the proxy contract's names) means, in words.
ATTEMPT_MEANINGS = {
    "ok": "answered",
    "failed_over": "failed before the first byte; the next backend was tried",
    "interrupted": "broke off after the first byte; the answer was cut",
    "client_disconnected": "the client went away; the upstream request was closed",
    "client_error": "answered 4xx; passed to the client as it was",
    "failed": "failed before the first byte; no attempt was left",
}
#: Outcomes that count against the backend's health.
UPSTREAM_FAILURES = frozenset({"failed_over", "failed", "interrupted"})

USAGE_SOURCES = {
    "upstream": "from the upstream's answer",
    "estimated": "estimated from the characters sent and received",
    "reported": "reported by the client",
}


@dataclass(frozen=True)
class AttemptRow:
    """One upstream attempt of a proxied request, as recorded."""

    backend: str
    outcome: str
    status: int | None
    error: str
    duration_ms: float | None
    ttft_ms: float | None

    @property
    def meaning(self) -> str:
        return ATTEMPT_MEANINGS.get(self.outcome, self.outcome)

    @property
    def upstream_failed(self) -> bool:
        return self.outcome in UPSTREAM_FAILURES


@dataclass(frozen=True)
class UsageFigures:
    """What a routed request really used, and where the figures came from."""

    input_tokens: int
    output_tokens: int
    cost_usd: Any
    source: str

    @property
    def source_text(self) -> str:
        return USAGE_SOURCES.get(self.source, self.source)


def _attempt_rows(entries: Any) -> list[AttemptRow]:
    if not isinstance(entries, list):
        return []
    return [
        AttemptRow(
            backend=str(entry.get("backend") or ""),
            outcome=str(entry.get("outcome") or ""),
            status=entry.get("status"),
            error=str(entry.get("error") or ""),
            duration_ms=entry.get("duration_ms"),
            ttft_ms=entry.get("ttft_ms"),
        )
        for entry in entries
        if isinstance(entry, dict)
    ]


def _usage_figures(usage: Any) -> UsageFigures | None:
    if not isinstance(usage, dict):
        return None
    return UsageFigures(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cost_usd=usage.get("cost_usd"),
        source=str(usage.get("source") or ""),
    )


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
    trace_groups: list[TraceGroup]
    exclusions: list[Exclusion]
    candidates: list[Candidate]
    warnings: list[str]
    budget_status: str
    models_tried: list[str]
    fallback_used: bool
    error: dict[str, Any] = field(default_factory=dict)
    #: Proxied requests: the upstream attempts in order (empty otherwise).
    attempts: list[AttemptRow] = field(default_factory=list)
    #: What the request really used, once reported (None before, and for dry runs).
    usage: UsageFigures | None = None


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def _split_trace(trace: list[TraceRow], models: list[str]) -> list[list[TraceRow]]:
    """The trace cut into one run of rows per model tried, in order.

    A run is the consecutive rows of its model; it also ends where a stage
    repeats (a fallback that resolved to the model just tried). Returns one run
    of everything when the rows do not line up with ``models`` (old decisions).
    """
    runs: list[list[TraceRow]] = []
    position = 0
    for model in models:
        run: list[TraceRow] = []
        seen: set[str] = set()
        while position < len(trace):
            row = trace[position]
            if row.model != model or row.reconciler in seen:
                break
            run.append(row)
            seen.add(row.reconciler)
            position += 1
        runs.append(run)
    if position != len(trace):
        return [trace]
    return runs


def _exclusion_counts(rows: list[TraceRow]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        if row.excluded:
            counts[row.reconciler] = counts.get(row.reconciler, 0) + len(row.excluded)
    return ", ".join(f"{name} excluded {count}" for name, count in counts.items())


def _why_not_viable(model: str, rows: list[TraceRow]) -> str:
    """Why an attempt found no backend, from its own trace rows."""
    failed = next((row for row in rows if row.error), None)
    if failed is not None:
        return f"{failed.reconciler} failed: {failed.error}"
    counts = _exclusion_counts(rows)
    if counts:
        return f"no viable backend: {counts}"
    if rows and not rows[-1].after:
        return f"no backend serves '{model}'"
    return f"rejected by {rows[-1].reconciler}" if rows else "no stage ran"


def _group_end(
    model: str, rows: list[TraceRow], next_model: str | None, payload: dict[str, Any]
) -> str:
    """One line: why this model's attempt ended (fell back, routed, queued, ...)."""
    if next_model is not None:
        return f"{_why_not_viable(model, rows)} → fell back to '{next_model}'"
    outcome = payload.get("outcome", "")
    backend = (payload.get("backend") or {}).get("name") or payload.get(
        "backend_name", ""
    )
    if outcome == "route":
        return f"routed to {backend}"
    if outcome == "queue":
        return f"queued for {backend}"
    return f"rejected: {_why_not_viable(model, rows)}"


def trace_groups(
    trace: list[TraceRow], models_tried: list[str], payload: dict[str, Any]
) -> list[TraceGroup]:
    """The trace grouped per model tried, each with the line saying why it ended."""
    models = models_tried or [payload.get("model", "")]
    runs = _split_trace(trace, models)
    if len(runs) != len(models):  # rows that do not line up: one plain group
        models = [payload.get("model", "")]
    groups = []
    for index, (model, rows) in enumerate(zip(models, runs, strict=True)):
        last = index == len(models) - 1
        groups.append(
            TraceGroup(
                model=model,
                label="primary" if index == 0 else f"fallback {index}",
                rows=rows,
                ended=_group_end(
                    model, rows, None if last else models[index + 1], payload
                ),
                last=last,
            )
        )
    return groups


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
    models_tried = [str(m) for m in payload.get("models_tried") or []]
    scores = annotations.get("scores") or {}
    breakdowns = annotations.get("score_breakdown") or {}
    weights = annotations.get("scorer_weights") or {}
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
                weights=weights if isinstance(weights, dict) else {},
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
        trace_groups=trace_groups(trace, models_tried, payload),
        exclusions=exclusions,
        candidates=candidates,
        warnings=list(payload.get("warnings") or []),
        budget_status=str(annotations.get("budget_status") or ""),
        models_tried=models_tried,
        fallback_used=bool(payload.get("fallback_used")),
        error=payload.get("error") or {},
        attempts=_attempt_rows(payload.get("attempts")),
        usage=_usage_figures(payload.get("usage")),
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
    """What differs between a recorded decision and its re-run, in reading order.

    The budget status and the score factors that follow probes and traffic are
    compared by ``observed_changes``.
    """
    changes: list[Change] = []

    def compare(what: str, old: Any, new: Any) -> None:
        if _fmt(old) != _fmt(new):
            changes.append(Change(what, _fmt(old), _fmt(new)))

    compare("outcome", before.outcome, after.outcome)
    compare("resolved model", before.model, after.model)
    compare("backend", before.backend, after.backend)
    compare("models tried", before.models_tried, after.models_tried)
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


#: Score factors that follow probes and traffic (``priority`` and ``cost`` follow
#: the configuration).
OBSERVED_FACTORS = ("latency", "errors", "load")


@dataclass(frozen=True)
class ObservedBackend:
    """A backend's probed and traffic state today."""

    health: str
    latency_ema_ms: float | None
    error_rate: float
    pending_requests: int
    max_concurrency: int


@dataclass(frozen=True)
class ObservedBudget:
    """An enabled budget's spend today."""

    name: str
    spent_usd: float
    limit_usd: float


def _factor(value: Any) -> str:
    return f"{float(value):.3g}" if isinstance(value, int | float) else _fmt(value)


def _today(factor: str, state: ObservedBackend | None) -> str:
    """Today's raw value behind ``factor`` (the decision recorded only factors)."""
    if state is None:
        return ""
    if factor == "latency":
        if state.latency_ema_ms is None:
            return "no latency measured today"
        return f"latency today {state.latency_ema_ms:.3g} ms"
    if factor == "errors":
        return f"error rate today {state.error_rate:.3g}"
    return f"{state.pending_requests} of {state.max_concurrency} slots busy today"


def _unhealthy(view: DecisionView) -> set[str]:
    return {
        e.backend
        for e in view.exclusions
        if e.reconciler == "request_analyzer" and e.reason.startswith("unhealthy")
    }


def _seen_by_analyzer(view: DecisionView) -> set[str]:
    """Backends the request analyzer saw: candidates or excluded as unavailable."""
    names: set[str] = set()
    for row in view.trace:
        if row.reconciler == "request_analyzer":
            names.update(row.after)
            names.update(item.get("backend", "") for item in row.excluded)
    return names


def observed_changes(
    before: DecisionView,
    after: DecisionView,
    *,
    backends: dict[str, ObservedBackend],
    budgets: list[ObservedBudget],
) -> list[Change]:
    """What moved in the observed state (probes, traffic, spend) between a
    recorded decision and its re-run; configuration edits are not in here.

    A decision records score factors, not raw probe values, so a factor is
    compared as recorded and today's raw value is shown beside today's factor.
    Health is known at decision time only as far as the request analyzer saw it:
    excluded as unhealthy, or a candidate (healthy, loading or not yet probed).
    """
    changes: list[Change] = []
    was_unhealthy, is_unhealthy = _unhealthy(before), _unhealthy(after)
    seen = _seen_by_analyzer(before) & _seen_by_analyzer(after)
    for name in sorted(seen):
        if (name in was_unhealthy) != (name in is_unhealthy):
            state = backends.get(name)
            changes.append(
                Change(
                    f"health of {name}",
                    "unhealthy"
                    if name in was_unhealthy
                    else "a candidate (not unhealthy)",
                    state.health if state else _fmt(None),
                )
            )
    old = {c.backend: c.breakdown for c in before.candidates}
    new = {c.backend: c.breakdown for c in after.candidates}
    for name in sorted(set(old) & set(new)):
        for factor in OBSERVED_FACTORS:
            if factor not in old[name] or factor not in new[name]:
                continue
            was, now = _factor(old[name][factor]), _factor(new[name][factor])
            if was != now:
                today = _today(factor, backends.get(name))
                changes.append(
                    Change(
                        f"{factor} factor of {name}",
                        was,
                        f"{now} ({today})" if today else now,
                    )
                )
    if _fmt(before.budget_status) != _fmt(after.budget_status):
        spend = "; ".join(
            f"{b.name}: ${b.spent_usd:.2f} spent of ${b.limit_usd:.2f}" for b in budgets
        )
        changes.append(
            Change(
                "budget status",
                _fmt(before.budget_status),
                f"{_fmt(after.budget_status)} ({spend})"
                if spend
                else _fmt(after.budget_status),
            )
        )
    return changes


# -- backends ------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendRow:
    """A backend with what the proxy sees of it now: requests in flight and the
    state of its circuit (passive health)."""

    backend: Backend
    in_flight: int
    #: ``open`` (kept out of selection until ``open_until``), ``cooled`` (the
    #: cool-down is over; the next routing call half-opens it), ``half-open``
    #: (one trial request goes through) or ``closed``.
    circuit: str
    open_until: datetime | None
    reason: str


def backend_table_row(
    backend: Backend, *, in_flight: dict[str, int], now: datetime
) -> BackendRow:
    """``backend``'s row; ``in_flight`` is ``in_flight_counts()`` (missing: 0)."""
    until = backend.unhealthy_until
    if until is not None and until > now:
        circuit = "open"
    elif until is not None and backend.health == "unhealthy":
        circuit = "cooled"
    elif backend.health_reason == HALF_OPEN:
        circuit = "half-open"
    else:
        circuit = "closed"
    return BackendRow(
        backend=backend,
        in_flight=in_flight.get(backend.name, 0),
        circuit=circuit,
        open_until=until if circuit in {"open", "cooled"} else None,
        reason=backend.health_reason,
    )


def _listing(names: list[str]) -> str:
    quoted = [str(name) for name in names]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def scope_words(scope: object) -> str:
    """A budget's scope as a sentence: what it governs (``everything`` when
    empty), e.g. ``requests from clients team-a-app or team-a-batch, for models
    matching gpt-*, on backends in zone cloud``."""
    if not isinstance(scope, dict):
        return "everything"
    phrases = []
    for key, singular, plural in (
        ("clients", "requests from client", "requests from clients"),
        ("models", "for model", "for models matching"),
        ("zones", "on backends in zone", "on backends in zones"),
        ("backends", "on backend", "on backends"),
    ):
        names = scope.get(key)
        if names:
            phrase = singular if len(names) == 1 else plural
            if key == "models" and len(names) == 1:
                phrase = "for models matching"
            phrases.append(f"{phrase} {_listing(names)}")
    if not phrases:
        return "everything"
    return ", ".join(phrases)
