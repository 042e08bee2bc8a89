"""What flows through the pipeline: the request, its derived facts, the intent.

``RoutingIntent`` is the one mutable object of a routing attempt. Reconcilers
read it and may only *narrow* it: ``exclude()`` moves a candidate to
``excluded`` (first reason kept, never restored), ``exclude_failing()`` does so
for every candidate a pure rule fails (its verdicts kept in the index), and
``add_candidate()`` refuses anything already excluded, so candidates and
excluded stay disjoint whatever a reconciler does. The runner uses
``begin_stage``, ``log_position``/``rejections_since``, ``stage_reasons``,
``version``/``candidate_names`` and ``checkpoint``/``restore``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from routing.pipeline.index import Q, Rule, SnapshotIndex, Step
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
    Rejection,
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
    ``client`` is who asks (the API key's or user's name).
    """

    model: str
    body: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    privacy: PrivacyConstraint | None = None
    min_tier: int | None = None
    tier_mode: TierMode | None = None
    max_cost_usd: float | None = None
    sources: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    #: Who asks (the API key's or user's name): budgets scoped to clients use it.
    client: str = ""

    def source_of(self, constraint: str) -> str:
        """Where ``constraint`` was stated ("request" when not recorded)."""
        return self.sources.get(constraint, "request")


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """The world a request is routed in: configuration, budgets and live load.

    ``in_flight`` maps a backend name to the requests in flight to it right now
    (counted by the proxy across processes); None when nobody counts them, and
    then a backend's ``pending_requests`` alone is its load.
    """

    config: ConfigSnapshot
    budgets: tuple[BudgetSnapshot, ...]
    in_flight: Mapping[str, int] | None = None


class Requirements:
    """Facts derived from the body (never any of its text). Immutable.

    A plain class, not a frozen dataclass: one is built per request, and
    compiled (``routing.pipeline_build``) its ``__init__`` is native, where a
    dataclass's is generated Python. ``Final`` makes mypy refuse assignments,
    and the compiled class refuses them at run time.
    """

    def __init__(
        self,
        vision: bool = False,
        tools: bool = False,
        json_mode: bool = False,
        estimated_input_tokens: int = 0,
        estimated_output_tokens: int = 0,
    ) -> None:
        self.vision: Final = vision
        self.tools: Final = tools
        self.json_mode: Final = json_mode
        self.estimated_input_tokens: Final = estimated_input_tokens
        self.estimated_output_tokens: Final = estimated_output_tokens

    def _fields(self) -> tuple[bool, bool, bool, int, int]:
        return (
            self.vision,
            self.tools,
            self.json_mode,
            self.estimated_input_tokens,
            self.estimated_output_tokens,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Requirements):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return "Requirements({})".format(
            ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        )

    def __reduce__(
        self,
    ) -> tuple[type[Requirements], tuple[bool, bool, bool, int, int]]:
        return (Requirements, self._fields())

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
            return str(PrivacyLevel.UNRESTRICTED)
        return "+".join([str(c) for c in self.privacy])

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


#: ``new_tuple(Named, (values...))`` builds a named tuple without its
#: Python-level ``__new__`` (every field, in order; for the hot path).
new_tuple = tuple.__new__


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


# Immutable defaults shared by every fresh intent (cheaper than building them).
_NO_REQUIREMENTS = Requirements()
_NO_CONSTRAINTS = Constraints()
_NO_OFFERS: dict[str, ModelOffer] = {}  # read only


class Checkpoint(NamedTuple):
    """What ``RoutingIntent.restore`` needs to undo a reconciler (opaque)."""

    candidates: dict[str, BackendSnapshot]
    log_position: int
    annotations: dict[str, Any]
    warnings: list[str]
    scorers: frozenset[str]
    step: Step | None
    pure: bool


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
        "_excluded_shared",
        "_excluders",
        "_foreign",
        "_log",
        "_log_shared",
        "_pure",
        "_step",
        "_reasons",
        "_reasons_shared",
        "_scorers",
        "_shared",
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
        self.offers: dict[str, ModelOffer] = _NO_OFFERS
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
        # True while ``_candidates`` may be shared (the index's, a step's or a
        # checkpoint's dict): copied before it is changed in place.
        self._shared = False
        self._excluded: dict[str, Rejection] = {}
        self._excluded_shared = False  # as ``_shared``, for ``_excluded``
        self._log: list[Rejection] = []
        self._log_shared = False  # as ``_shared``, for ``_log``
        self._reasons: dict[str, str] = {}  # backend -> reason, this stage
        self._reasons_shared = False  # as ``_shared``, for ``_reasons``
        self._excluders: dict[str, None] = {}  # reconcilers, by first rejection
        self._scorers: frozenset[str] = frozenset()
        self._version = 0
        # True once a candidate may not be, in snapshot order, one of the
        # backends serving the model (see ``exclude_failing``).
        self._foreign = False
        # The step the candidates came from, while only ``add_serving`` and
        # ``exclude_failing`` changed them (None otherwise).
        self._step: Step | None = None
        # True while the rejections are exactly ``_step``'s path's (``log`` and
        # ``excluded_all``): nothing but the steps excluded anything.
        self._pure = False

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
        self._own_candidates()[name] = backend
        self._foreign = True
        self._step = None
        self._pure = False
        self._version += 1
        return True

    def add_candidates(self, backends: Iterable[BackendSnapshot]) -> None:
        """Add many candidates at once (same rules as ``add_candidate``)."""
        for backend in backends:
            self.add_candidate(backend)

    def add_serving(self) -> None:
        """Make every backend serving the model a candidate (snapshot order),
        except those already excluded."""
        root = self.index.root_step(self.model)
        serving = root.after
        if self._candidates or not self._excluded.keys().isdisjoint(serving.keys()):
            self.add_candidates(serving.values())
            return
        self._candidates = serving
        self._shared = True
        self._step = root
        self._pure = not self._log
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
        if backend in self._excluded:
            return False
        if backend in self._candidates:
            del self._own_candidates()[backend]
            self._step = None
        self._pure = False
        by = reconciler or self.current_reconciler
        rejection = new_tuple(
            Rejection, (backend, by, reason, suggested_action, self.model)
        )
        self._own_excluded()[backend] = rejection
        self._own_log().append(rejection)
        self._own_reasons()[backend] = reason
        self._excluders.setdefault(by)
        self._version += 1
        return True

    def exclude_failing(self, rule: Rule[Q], question: Q) -> int:
        """Exclude every candidate for which ``rule(backend, offer, question)``
        returns (reason, suggested action), in candidate order; return how many.

        ``rule`` must be pure (e.g. a module-level function): its answers for
        the snapshot's backends are kept in the index per (rule, question,
        model), so each is worked out once per snapshot.
        """
        if self._foreign:
            count = 0
            for backend in self.candidate_list():
                verdict = rule(backend, self.offers.get(backend.name), question)
                if verdict is not None:
                    count += self.exclude(backend.name, *verdict)
            return count
        by = self.current_reconciler
        last = self._step
        if last is None:
            return self._take_step(self._work_out(rule, question, by, None), by)
        # The candidates are the model's serving backends narrowed only by
        # earlier rules: this step is the same for every request that took the
        # same steps, so the index keeps it, after the last one.
        step = self.index.next_step(
            last,
            (rule, question, by),
            lambda: self._work_out(rule, question, by, last),
        )
        self._take_step(step, by)
        self._step = step
        return len(step.failing)

    def _work_out(
        self, rule: Rule[Q], question: Q, by: str, parent: Step | None
    ) -> Step:
        """What excluding the candidates failing ``rule`` does to the candidates."""
        table, reasons = self.index.rejections(rule, question, self.model, by)
        candidates = self._candidates
        if table.keys() <= candidates.keys():  # all of them are candidates
            failing, excluded, why = list(table.values()), table, reasons
        else:
            names = [name for name in table if name in candidates]
            failing = [table[name] for name in names]
            excluded = dict(zip(names, failing, strict=True))
            why = {name: reasons[name] for name in names}
        after = {n: b for n, b in candidates.items() if n not in excluded}
        return Step(failing, excluded, why, after, parent)

    def _take_step(self, step: Step, by: str) -> int:
        if step.failing:
            self._candidates = step.after
            self._shared = True
            # The step's (the index's) dicts and list are taken as they are,
            # and copied only if changed: the attempt's rejections when they are
            # the step's path's, the stage's reasons when these are its first.
            if self._pure:
                self._excluded, self._excluded_shared = step.excluded_all, True
                self._log, self._log_shared = step.log, True
            else:
                self._own_excluded().update(step.excluded)
                self._own_log().extend(step.failing)
            if self._reasons:
                self._own_reasons().update(step.reasons)
            else:
                self._reasons, self._reasons_shared = step.reasons, True
            self._excluders.setdefault(by)
            self._version += 1
        return len(step.failing)

    def _own_candidates(self) -> dict[str, BackendSnapshot]:
        """``_candidates``, copied first if it may be shared."""
        if self._shared:
            self._candidates = dict(self._candidates)
            self._shared = False
        return self._candidates

    def _own_excluded(self) -> dict[str, Rejection]:
        """``_excluded``, copied first if it may be shared."""
        if self._excluded_shared:
            self._excluded = dict(self._excluded)
            self._excluded_shared = False
        return self._excluded

    def _own_log(self) -> list[Rejection]:
        """``_log``, copied first if it may be shared."""
        if self._log_shared:
            self._log = list(self._log)
            self._log_shared = False
        return self._log

    def _own_reasons(self) -> dict[str, str]:
        """``_reasons``, copied first if it may be shared."""
        if self._reasons_shared:
            self._reasons = dict(self._reasons)
            self._reasons_shared = False
        return self._reasons

    def exclude_all(
        self, backends: Iterable[str], reason: str, suggested_action: str = ""
    ) -> int:
        """Exclude each of ``backends`` for the same reason; return how many were
        newly excluded (same rules as ``exclude``)."""
        return sum(self.exclude(name, reason, suggested_action) for name in backends)

    # -- scorers ----------------------------------------------------------------

    def use_scorer(self, name: str) -> None:
        """Count the optional scorer ``name`` (e.g. ``cost``) in this attempt's
        smart score, with its configured weight."""
        self._scorers = self._scorers | {name}

    @property
    def scorers_in_use(self) -> frozenset[str]:
        """The optional scorers a reconciler asked for (``use_scorer``)."""
        return self._scorers

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

    # -- for the runner -----------------------------------------------------------

    @property
    def version(self) -> int:
        """A counter that changes whenever the candidates change."""
        return self._version

    def begin_stage(self, reconciler: str) -> None:
        """``reconciler`` runs next: exclusions are made in its name."""
        self.current_reconciler = reconciler
        self._reasons = {}
        self._reasons_shared = False

    @property
    def stage_reasons(self) -> dict[str, str]:
        """Backend -> reason of each exclusion since ``begin_stage`` (read only:
        it may be the index's)."""
        return self._reasons

    @property
    def log_position(self) -> int:
        """How many rejections have been made so far (see ``rejections_since``)."""
        return len(self._log)

    def rejections_since(self, position: int) -> tuple[Rejection, ...]:
        """The rejections made after ``log_position`` was ``position``."""
        log = self._log
        return tuple(log[position:]) if len(log) > position else ()

    def candidate_names(self) -> tuple[str, ...]:
        """The candidates' names, in order."""
        return tuple(self._candidates)

    def checkpoint(self) -> Checkpoint:
        """Everything a reconciler may change, to ``restore`` if it fails."""
        self._shared = True
        return new_tuple(
            Checkpoint,
            (
                self._candidates,
                len(self._log),
                dict(self.annotations),
                list(self.warnings),
                self._scorers,
                self._step,
                self._pure,
            ),
        )

    def restore(self, saved: Checkpoint) -> None:
        """Undo everything done since ``checkpoint()`` returned ``saved``."""
        if len(self._log) > saved.log_position:
            excluded, log = self._own_excluded(), self._own_log()
            for rejection in log[saved.log_position :]:
                del excluded[rejection.backend]
            del log[saved.log_position :]
        self._reasons = {}
        self._reasons_shared = False
        self._excluders = dict.fromkeys([r.reconciler for r in self._log])
        self._candidates = saved.candidates
        self._shared = True
        self.annotations = saved.annotations
        self.warnings = saved.warnings
        self._scorers = saved.scorers
        self._step = saved.step
        self._pure = saved.pure
        self._version += 1
