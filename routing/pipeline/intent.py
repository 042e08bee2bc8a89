"""What flows through the pipeline: the request, its derived facts, the intent.

``RoutingIntent`` is the one mutable object of a routing attempt. Reconcilers
read it and may only *narrow* it: ``exclude()`` moves a candidate to
``excluded`` (first reason kept, never restored) and ``add_candidate()`` refuses
anything already excluded, so candidates and excluded stay disjoint whatever a
reconciler does.

Hot path: while the candidates are an unmodified copy of a per-snapshot memo
(``step_origin``), a reconciler may apply a memoised ``CandidateStep`` that makes
the same rejections in bulk (``apply_step``); any other change drops the origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, NamedTuple

from routing.pipeline.index import SnapshotIndex
from routing.pipeline.rules import PrivacyConstraint
from routing.pipeline.types import (
    BackendSnapshot,
    BudgetSnapshot,
    ConfigSnapshot,
    ErrorPolicy,
    ModelOffer,
    Outcome,
    PolicySnapshot,
    PrivacyLevel,
    TierMode,
)

_EMPTY: Mapping[str, Any] = MappingProxyType({})

#: Error types a reject can carry.
NO_VIABLE_BACKEND = "no_viable_backend"
MODEL_NOT_FOUND = "model_not_found"
PIPELINE_ERROR = "pipeline_error"


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """One routing question: a model name, the OpenAI-style body, constraints.

    ``sources`` says where each request constraint came from ("body" or
    "header"), keyed by "privacy", "min_tier", "tier_mode", "max_cost_usd".
    """

    model: str
    body: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    privacy: PrivacyConstraint | None = None
    min_tier: int | None = None
    tier_mode: TierMode | None = None
    max_cost_usd: float | None = None
    sources: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def source_of(self, constraint: str) -> str:
        """Where ``constraint`` was stated ("request" when not recorded)."""
        return self.sources.get(constraint, "request")


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """The world a request is routed in: configuration, budgets, today's date."""

    config: ConfigSnapshot
    budgets: tuple[BudgetSnapshot, ...]
    today: date


@dataclass(frozen=True, slots=True)
class Requirements:
    """Facts derived from the body (never any of its text)."""

    vision: bool = False
    tools: bool = False
    json_mode: bool = False
    estimated_input_tokens: int = 0
    estimated_output_tokens: int = 0

    @property
    def estimated_total_tokens(self) -> int:
        """Input plus output tokens: what the context window must hold."""
        return self.estimated_input_tokens + self.estimated_output_tokens

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "vision": self.vision,
            "tools": self.tools,
            "json_mode": self.json_mode,
            "estimated_input_tokens": self.estimated_input_tokens,
            "estimated_output_tokens": self.estimated_output_tokens,
        }


@dataclass(frozen=True, slots=True)
class Constraints:
    """The effective constraints of an attempt: request and matched policies combined.

    ``privacy`` holds every stated non-unrestricted constraint (a backend must
    satisfy all of them); ``min_tier`` is the highest stated; ``max_cost_usd``
    the lowest. Each ``*_sources`` names where the effective value came from
    ("body", "header", "policy:<name>" or "default").
    """

    privacy: tuple[PrivacyConstraint, ...] = ()
    privacy_sources: tuple[str, ...] = ()
    min_tier: int | None = None
    min_tier_sources: tuple[str, ...] = ()
    tier_mode: TierMode = TierMode.STRICT
    tier_mode_sources: tuple[str, ...] = ("default",)
    max_cost_usd: float | None = None
    max_cost_sources: tuple[str, ...] = ()

    @property
    def privacy_label(self) -> str:
        """``unrestricted``, or the constraints joined by ``+`` (e.g.
        ``restricted+zone:eu-private``)."""
        if not self.privacy:
            return PrivacyLevel.UNRESTRICTED.value
        return "+".join(str(c) for c in self.privacy)

    def allows_zone(self, zone: str | None, zone_private: bool) -> bool:
        """Whether a backend in ``zone`` satisfies every privacy constraint."""
        return all(c.allows(zone=zone, zone_private=zone_private) for c in self.privacy)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: each constraint's value and where it came from."""
        return {
            "privacy": {
                "value": self.privacy_label,
                "sources": list(self.privacy_sources) or ["default"],
            },
            "min_tier": {
                "value": self.min_tier,
                "sources": list(self.min_tier_sources),
            },
            "tier_mode": {
                "value": self.tier_mode.value,
                "sources": list(self.tier_mode_sources),
            },
            "max_cost_usd": {
                "value": self.max_cost_usd,
                "sources": list(self.max_cost_sources),
            },
        }


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


# ``tuple.__new__`` skips the Python-level ``__new__`` of named tuples (hot path).
_new_tuple = tuple.__new__


class TraceEntry(NamedTuple):
    """What one reconciler did in one attempt (``model`` is the attempt's)."""

    model: str
    reconciler: str
    error_policy: ErrorPolicy
    candidates_before: tuple[str, ...]
    candidates_after: tuple[str, ...]
    excluded: tuple[Rejection, ...]
    duration_us: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the contract's trace entry plus ``model``)."""
        return {
            "reconciler": self.reconciler,
            "error_policy": self.error_policy.value,
            "model": self.model,
            "candidates_before": list(self.candidates_before),
            "candidates_after": list(self.candidates_after),
            "excluded": [
                {
                    "backend": r.backend,
                    "reason": r.reason,
                    "suggested_action": r.suggested_action,
                }
                for r in self.excluded
            ],
            "duration_us": round(self.duration_us, 1),
            "error": self.error,
        }


class CandidateStep(NamedTuple):
    """A memoised change of the candidates (see ``RoutingIntent.apply_step``).

    From candidates that are an unmodified copy of ``before`` (same names, same
    order, same objects), making ``rejections`` one by one leaves ``after``.
    Build it with ``prepare_step`` (or ``initial_step``) and keep it where
    ``before`` is memoised.
    """

    before: Mapping[str, BackendSnapshot]
    after: Mapping[str, BackendSnapshot]
    rejections: tuple[Rejection, ...]
    by_backend: Mapping[str, Rejection]
    reasons: Mapping[str, str]  # backend -> reason, for a ``*_excluded`` map
    excluders: tuple[str, ...]  # the rejections' reconcilers, first seen first


#: The origin of a fresh intent: no candidates, nothing excluded yet.
FRESH: Mapping[str, BackendSnapshot] = MappingProxyType({})


def _step(
    before: Mapping[str, BackendSnapshot],
    after: Mapping[str, BackendSnapshot],
    rejections: tuple[Rejection, ...],
) -> CandidateStep:
    return CandidateStep(
        before,
        after,
        rejections,
        {r.backend: r for r in rejections},
        {r.backend: r.reason for r in rejections},
        tuple(dict.fromkeys(r.reconciler for r in rejections)),
    )


def prepare_step(
    before: Mapping[str, BackendSnapshot], rejections: Iterable[Rejection]
) -> CandidateStep | None:
    """The step excluding ``rejections`` from ``before``; None unless each names a
    different backend of ``before`` (then exclude them one by one instead)."""
    rejections = tuple(rejections)
    names = {r.backend for r in rejections}
    if len(names) != len(rejections) or not names <= before.keys():
        return None
    if not rejections:
        return _step(before, before, rejections)
    after = {name: b for name, b in before.items() if name not in names}
    return _step(before, after, rejections)


def initial_step(
    candidates: Mapping[str, BackendSnapshot], rejections: Iterable[Rejection]
) -> CandidateStep | None:
    """The step of a fresh intent that excludes ``rejections`` (backends that
    are not candidates), then ``add_candidates(candidates, memoised=True)``;
    None unless the rejections name different backends, none a candidate."""
    rejections = tuple(rejections)
    names = {r.backend for r in rejections}
    if len(names) != len(rejections) or not names.isdisjoint(candidates):
        return None
    return _step(
        FRESH, dict(candidates) if candidates is FRESH else candidates, rejections
    )


# Immutable defaults shared by every fresh intent (cheaper than building them).
_NO_REQUIREMENTS = Requirements()
_NO_CONSTRAINTS = Constraints()
_NO_OFFERS: Mapping[str, ModelOffer] = MappingProxyType({})


class RoutingIntent:
    """The state of one routing attempt (one model) as it moves through the pipeline.

    Filled by ``request_analyzer`` (model, alias chain, policies, constraints,
    requirements, candidates), narrowed by the filtering reconcilers, decided by
    ``selection``. Only the methods below change candidates, so the invariants
    (disjoint, monotonic, idempotent) hold for every reconciler.
    """

    __slots__ = (
        "alias_chain",
        "alias_error",
        "annotations",
        "constraints",
        "context",
        "current_reconciler",
        "error_message",
        "error_type",
        "estimated_wait_ms",
        "fallback_backend",
        "index",
        "inherited_policies",
        "matched_policies",
        "model",
        "offers",
        "outcome",
        "reason",
        "request",
        "requested_model",
        "requirements",
        "score",
        "selected",
        "trace",
        "warnings",
        "_candidates",
        "_excluded",
        "_excluders",
        "_log",
        "_origin",
        "_version",
    )

    def __init__(
        self,
        request: RoutingRequest,
        context: RoutingContext,
        index: SnapshotIndex,
        *,
        requested_model: str | None = None,
        inherited_policies: tuple[PolicySnapshot, ...] = (),
    ) -> None:
        self.request = request
        self.context = context
        self.index = index
        self.requested_model = (
            request.model if requested_model is None else requested_model
        )
        self.inherited_policies = inherited_policies
        self.model = self.requested_model
        self.alias_chain: tuple[str, ...] = ()
        self.alias_error = False
        self.requirements = _NO_REQUIREMENTS
        self.constraints = _NO_CONSTRAINTS
        self.matched_policies: tuple[PolicySnapshot, ...] = inherited_policies
        self.offers: Mapping[str, ModelOffer] = _NO_OFFERS
        self.annotations: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.trace: list[TraceEntry] = []
        self.current_reconciler = ""
        self.outcome: Outcome | None = None
        self.selected: BackendSnapshot | None = None
        self.score: float | None = None
        self.reason: str | None = None
        self.estimated_wait_ms: int | None = None
        self.fallback_backend: str | None = None
        self.error_type: str | None = None
        self.error_message: str | None = None
        self._candidates: dict[str, BackendSnapshot] = {}
        self._excluded: dict[str, Rejection] = {}
        self._log: list[Rejection] = []
        self._excluders: dict[str, None] = {}  # reconcilers, by first rejection
        # The memoised mapping the candidates are an unmodified copy of, if any
        # (FRESH: nothing added or excluded yet).
        self._origin: Mapping[str, BackendSnapshot] | None = FRESH
        self._version = 0

    # -- candidates -------------------------------------------------------------

    @property
    def candidates(self) -> Mapping[str, BackendSnapshot]:
        """Backends still in the running (read-only view, insertion order)."""
        return MappingProxyType(self._candidates)

    @property
    def excluded(self) -> Mapping[str, Rejection]:
        """Excluded backend name -> the first rejection (read-only view)."""
        return MappingProxyType(self._excluded)

    @property
    def rejections(self) -> tuple[Rejection, ...]:
        """Every rejection of this attempt, in the order it was made."""
        return tuple(self._log)

    @property
    def excluded_by(self) -> tuple[str, ...]:
        """The reconcilers named by the rejections, in order of their first one."""
        return tuple(self._excluders)

    def candidate_list(self) -> list[BackendSnapshot]:
        """A snapshot list of the candidates, safe to iterate while excluding."""
        return list(self._candidates.values())

    def add_candidate(self, backend: BackendSnapshot) -> bool:
        """Make ``backend`` a candidate unless it is already one or was excluded."""
        name = backend.name
        if name in self._excluded or name in self._candidates:
            return False
        self._candidates[name] = backend
        self._origin = None
        self._version += 1
        return True

    def add_candidates(
        self, backends: Mapping[str, BackendSnapshot], *, memoised: bool = False
    ) -> None:
        """Add many candidates at once (same rules as ``add_candidate``).

        ``memoised``: ``backends`` is a per-snapshot memo that never changes, so
        memoised steps from it (``apply_step``) may apply to these candidates.
        """
        if not self._candidates and self._excluded.keys().isdisjoint(backends):
            self._candidates = dict(backends)
            self._origin = backends if memoised else None
        else:
            for backend in backends.values():
                self.add_candidate(backend)
        self._version += 1

    def exclude(
        self,
        backend: str,
        reason: str,
        suggested_action: str = "",
        *,
        reconciler: str | None = None,
    ) -> bool:
        """Exclude ``backend`` for ``reason``; False if it was already excluded.

        Works for backends that never were candidates too (e.g. disabled ones),
        so they appear in the rejections with a reason.
        """
        return bool(
            self.exclude_many(((backend, reason, suggested_action),), reconciler)
        )

    def exclude_many(
        self,
        exclusions: Iterable[tuple[str, str, str]],
        reconciler: str | None = None,
    ) -> list[str]:
        """Exclude each (backend, reason, suggested_action); return the names
        newly excluded (same rules as ``exclude``, one call for many)."""
        excluded = self._excluded
        pop = self._candidates.pop
        log = self._log
        by = reconciler or self.current_reconciler
        model = self.model
        done: list[str] = []
        for backend, reason, action in exclusions:
            if backend in excluded:
                continue
            pop(backend, None)
            rejection = _new_tuple(Rejection, (backend, by, reason, action, model))
            excluded[backend] = rejection
            log.append(rejection)
            done.append(backend)
        if done:
            self._version += 1
            self._origin = None
            self._excluders.setdefault(by)
        return done

    def exclude_rejections(
        self,
        rejections: Sequence[Rejection],
        record: dict[str, str] | None = None,
    ) -> int:
        """Exclude with prebuilt rejections (same rules as ``exclude``); return how
        many backends were newly excluded.

        For reconcilers that memoise ``Rejection`` tuples per snapshot: each must
        already name this attempt's ``model`` and the current reconciler.
        ``record`` (a ``*_excluded`` map) gets backend -> reason for each newly
        excluded backend; a backend given twice gets its last reason, as when the
        map is built from ``exclude_many``'s result.
        """
        excluded = self._excluded
        pop = self._candidates.pop
        log = self._log
        excluders = self._excluders
        last_by = None
        before = len(log)
        for rejection in rejections:
            backend = rejection.backend
            if backend in excluded:
                continue
            pop(backend, None)
            excluded[backend] = rejection
            log.append(rejection)
            if rejection.reconciler is not last_by:
                last_by = rejection.reconciler
                excluders.setdefault(last_by)
        added = len(log) - before
        if added:
            self._version += 1
            self._origin = None
            if record is not None:
                if added == len(rejections):  # all new, so no backend repeats
                    for rejection in rejections:
                        record[rejection.backend] = rejection.reason
                else:
                    reasons = {r.backend: r.reason for r in rejections}
                    for rejection in log[before:]:
                        record[rejection.backend] = reasons[rejection.backend]
        return added

    @property
    def step_origin(self) -> Mapping[str, BackendSnapshot] | None:
        """The memoised mapping the candidates are an unmodified copy of (given to
        ``add_candidates(..., memoised=True)``, or a step's ``after``), or None."""
        return self._origin

    def apply_step(
        self, step: CandidateStep, record: dict[str, str] | None = None
    ) -> bool:
        """Apply a memoised ``step`` if the candidates are an unmodified copy of
        ``step.before``: the same result as making its rejections with
        ``exclude_rejections(step.rejections, record)``, without the per-backend
        work. Returns False, changing nothing, otherwise."""
        if self._origin is not step.before:
            return False
        if step.after is not step.before:
            self._candidates = dict(step.after)
            self._origin = step.after
            self._version += 1
        if step.rejections:
            self._log.extend(step.rejections)
            self._excluded.update(step.by_backend)
            for by in step.excluders:
                self._excluders.setdefault(by)
            if record is not None:
                record.update(step.reasons)
        return True

    # -- annotations and warnings -----------------------------------------------

    def annotate(self, key: str, value: Any) -> None:
        """Set a JSON-safe annotation (str/int/float/bool/None, lists, dicts)."""
        self.annotations[key] = value

    def warn(self, message: str) -> None:
        """Add a warning once (repeating the same warning adds nothing)."""
        if message not in self.warnings:
            self.warnings.append(message)

    # -- decisions (selection, or a fail-closed error) --------------------------

    @property
    def decided(self) -> bool:
        """Whether an outcome has been set."""
        return self.outcome is not None

    def route_to(self, backend: BackendSnapshot, *, score: float, reason: str) -> None:
        """Decide ``route`` to ``backend``."""
        self.outcome = Outcome.ROUTE
        self.selected = backend
        self.score = score
        self.reason = reason

    def queue_for(
        self,
        backend: BackendSnapshot,
        *,
        score: float,
        reason: str,
        estimated_wait_ms: int,
        fallback_backend: str | None,
    ) -> None:
        """Decide ``queue`` behind a loading ``backend``."""
        self.outcome = Outcome.QUEUE
        self.selected = backend
        self.score = score
        self.reason = reason
        self.estimated_wait_ms = estimated_wait_ms
        self.fallback_backend = fallback_backend

    def reject(self, error_type: str, message: str | None = None) -> None:
        """Decide ``reject``; ``message`` None lets the result build one from the
        rejections."""
        self.outcome = Outcome.REJECT
        self.selected = None
        self.error_type = error_type
        self.error_message = message

    # -- used by the pipeline runner only ---------------------------------------

    def _rollback(
        self,
        candidates: dict[str, BackendSnapshot],
        origin: Mapping[str, BackendSnapshot] | None,
        mark: int,
    ) -> None:
        """Undo a failed fail-open reconciler: restore ``candidates`` and
        ``origin`` (as saved before it ran) and forget the rejections it made."""
        excluded = self._excluded
        for rejection in self._log[mark:]:
            del excluded[rejection.backend]
        del self._log[mark:]
        self._excluders = dict.fromkeys(r.reconciler for r in self._log)
        self._candidates = candidates
        self._origin = origin
        self._version += 1
