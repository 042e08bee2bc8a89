"""The per-snapshot index: lookups built once per ``ConfigSnapshot``.

``index_for(config)`` returns the cached ``SnapshotIndex`` of a snapshot. The
cache holds the last few snapshots by identity (``id`` plus an ``is`` check, so a
recycled id can never return a stale index); a new config version is a new
snapshot object and gets a new index on first use.

Reconcilers ask the index plain questions (who serves this model, who is
available, which backends satisfy these privacy constraints) and combine the
answers with set operations. Every cache of the pipeline lives here: the
answers that depend on a key (a model, a set of privacy constraints, a
requested name) are computed on first use and kept, bounded, for the life of
the snapshot.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final, NamedTuple, TypeVar

from routing.pipeline.rules import (
    AliasError,
    glob_matches,
    policy_names,
    resolve_alias,
)
from routing.pipeline.types import (
    BackendSnapshot,
    ConfigSnapshot,
    ModelOffer,
    PolicySnapshot,
    Rejection,
)

_T = TypeVar("_T")
Q = TypeVar("Q", bound=Hashable)

#: A rule: (backend, its offer of the model or None, question) -> (reason,
#: suggested action) when the backend fails, None when it passes. Pure: the
#: answer may depend only on its arguments (see ``SnapshotIndex.rejections``).
Rule = Callable[[BackendSnapshot, ModelOffer | None, Q], tuple[str, str] | None]
_EMPTY_OFFERS: dict[str, ModelOffer] = {}  # read only, as every dict below
_CACHE_LIMIT = 4096
_STEP_LIMIT = 256
_INDEX_CACHE_SIZE = 8


class SnapshotIndex:
    """Read-only lookups over one ``ConfigSnapshot``.

    - ``backends_by_name``; ``serving[model]``: the backends offering ``model``
      (snapshot order); ``offers[model]``: backend name -> that offer;
    - ``serving_by_name(model)``, ``smallest_window(model)``;
    - ``rejections(rule, question, model, reconciler)``: a rule's verdicts on
      the backends serving a model (see ``RoutingIntent.exclude_failing``);
    - ``root_step(model)`` / ``next_step(step, key, compute)``: the tree of
      steps ``exclude_failing`` takes (at most 256 per snapshot);
    - ``weighted_rows(factors)``, ``per_backend(factor)``: factors of every
      backend (for scorers);
    - ``resolve(name)`` (alias resolution), ``first_matching_policy(names)``;
    - ``memo(key, compute)``: a bounded cache for anything else derived from the
      snapshot and a small key.
    """

    __slots__ = (
        "backends_by_name",
        "config",
        "offers",
        "policies",
        "serving",
        "_cache",
        "_lock",
        "_step_count",
        "_steps",
    )

    def __init__(self, config: ConfigSnapshot) -> None:
        self.config = config
        self.backends_by_name: dict[str, BackendSnapshot] = {}
        serving: dict[str, list[BackendSnapshot]] = {}
        offers: dict[str, dict[str, ModelOffer]] = {}
        for backend in config.backends:
            self.backends_by_name[backend.name] = backend
            for model, offer in backend.models.items():
                serving.setdefault(model, []).append(backend)
                offers.setdefault(model, {})[backend.name] = offer
        self.serving: dict[str, tuple[BackendSnapshot, ...]] = {
            model: tuple(backends) for model, backends in serving.items()
        }
        # Plain dicts (read only by convention): their lookups are the fastest.
        self.offers: dict[str, dict[str, ModelOffer]] = offers
        self.policies: tuple[PolicySnapshot, ...] = tuple(
            sorted(config.policies, key=lambda p: (p.order, p.name))
        )
        self._cache: dict[Hashable, Any] = {}
        self._steps: dict[str, Step] = {}  # model -> the root of its steps
        self._step_count = 0
        self._lock = threading.Lock()

    # -- backends --------------------------------------------------------------

    def offers_for(self, model: str) -> dict[str, ModelOffer]:
        """Backend name -> offer of ``model`` (empty when nobody serves it)."""
        return self.offers.get(model, _EMPTY_OFFERS)

    def serving_by_name(self, model: str) -> dict[str, BackendSnapshot]:
        """Name -> backend of the backends offering ``model``, in snapshot order."""
        return self.memo(
            ("serving_by_name", model),
            lambda: {b.name: b for b in self.serving.get(model, ())},
        )

    def weighted_rows(self, factors: Factors) -> dict[str, WeightedRow]:
        """Name -> ``weighted_row(backend, factors.entries)`` for every backend;
        computed once per ``factors`` object."""
        return self.memo(
            ("weighted_rows", factors),
            lambda: {
                b.name: weighted_row(b, factors.entries) for b in self.config.backends
            },
        )

    def per_backend(
        self, factor: Callable[[BackendSnapshot], float]
    ) -> Mapping[str, tuple[BackendSnapshot, float]]:
        """Name -> (backend, ``factor(backend)``) for every backend; computed once
        per ``factor`` (which must depend only on the backend)."""
        return self.memo(
            ("per_backend", factor),
            lambda: {b.name: (b, factor(b)) for b in self.config.backends},
        )

    def rejections(
        self, rule: Rule[Q], question: Q, model: str, reconciler: str
    ) -> RuleTable:
        """The ``Rejection`` (by ``reconciler``, for ``model``) of each backend
        serving ``model`` that fails ``rule`` for ``question``, in snapshot order;
        computed once per (rule, question, model, reconciler)."""

        def compute() -> RuleTable:
            offers = self.offers_for(model)
            failing: dict[str, Rejection] = {}
            for backend in self.serving.get(model, ()):
                verdict = rule(backend, offers.get(backend.name), question)
                if verdict is not None:
                    failing[backend.name] = Rejection(
                        backend.name, reconciler, verdict[0], verdict[1], model
                    )
            return RuleTable(failing, {n: r.reason for n, r in failing.items()})

        return self.memo(("rejections", rule, question, model, reconciler), compute)

    def smallest_window(self, model: str) -> float:
        """The smallest context window of any offer of ``model`` (inf if none)."""
        return self.memo(
            ("smallest_window", model),
            lambda: min(
                (o.context_window for o in self.offers_for(model).values()),
                default=math.inf,
            ),
        )

    # -- names and policies ------------------------------------------------------

    def resolve(self, name: str) -> Resolution | str:
        """The model a requested ``name`` resolves to, its alias hops and the
        first policy matching any of those names; or the alias error."""

        def compute() -> Resolution | str:
            try:
                model, hops = resolve_alias(self.config.aliases, name)
            except AliasError as exc:
                return f"Model '{name}' not found: {exc}"
            policy = self.first_matching_policy(policy_names(name, hops, model))
            return Resolution(model, hops, policy)

        return self.memo(("resolve", name), compute)

    def first_matching_policy(self, names: tuple[str, ...]) -> PolicySnapshot | None:
        """The first policy (by order, name) whose pattern matches any of ``names``."""

        def compute() -> PolicySnapshot | None:
            for policy in self.policies:
                if any(glob_matches(policy.model_pattern, name) for name in names):
                    return policy
            return None

        return self.memo(("policy", names), compute)

    # -- the caches -----------------------------------------------------------------

    def root_step(self, model: str) -> Step:
        """The backends serving ``model`` before any rule: the root of its steps."""
        root = self._steps.get(model)
        if root is None:
            root = Step([], {}, {}, self.serving_by_name(model))
            with self._lock:
                root = self._steps.setdefault(model, root)
        return root

    def next_step(self, step: Step, key: Hashable, compute: Callable[[], Step]) -> Step:
        """The step after ``step`` for ``key``, ``compute()`` on first use. At
        most 256 steps are kept, as each holds a candidate set; then every tree
        is let go (requests holding a step finish on it)."""
        found = step.next.get(key)
        if found is None:
            found = compute()
            with self._lock:
                if self._step_count >= _STEP_LIMIT:
                    self._steps = {}
                    self._step_count = 0
                found = step.next.setdefault(key, found)
                self._step_count += 1
        return found

    def memo(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """``compute()``, kept per snapshot under ``key`` (at most 4096 entries,
        then cleared); ``key`` must say everything the value depends on besides
        the snapshot."""
        cache = self._cache
        try:
            value: _T = cache[key]
            return value
        except KeyError:
            pass
        value = compute()
        with self._lock:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = value
        return value


class Resolution(NamedTuple):
    """What a requested model name resolves to (``SnapshotIndex.resolve``)."""

    model: str
    hops: tuple[str, ...]  # the alias names passed through
    policy: PolicySnapshot | None  # the first matching policy


class RuleTable(NamedTuple):
    """A rule's verdicts: backend -> rejection, and backend -> its reason.

    Plain dicts (read only by convention), so bulk updates from them run in C.
    """

    rejections: dict[str, Rejection]
    reasons: dict[str, str]


#: (name, factor, weight): a factor depends only on the backend.
FactorEntry = tuple[str, Callable[[BackendSnapshot], float], float]


class Factors:
    """Weighted factors for ``SnapshotIndex.weighted_rows``, kept in the index
    per object (it hashes by identity: cheaper than hashing the entries on
    every request), so build one and reuse it."""

    def __init__(self, entries: tuple[FactorEntry, ...]) -> None:
        self.entries: Final = entries


class Step:
    """What excluding the candidates a rule fails does, one node of a model's
    tree of steps (see ``RoutingIntent.exclude_failing``).

    ``failing``, ``excluded`` and ``reasons`` are this step's rejections and
    ``after`` the candidates left; ``log`` and ``excluded_all`` every rejection
    from the model's serving backends (the root) to here; ``next`` the steps
    after this one, by (rule, question, reconciler). Read only, but ``next``,
    which grows under the index's lock. A plain class: compiled, its fields are
    native attributes (a named tuple's are Python-level lookups).
    """

    def __init__(
        self,
        failing: list[Rejection],
        excluded: dict[str, Rejection],
        reasons: dict[str, str],
        after: dict[str, BackendSnapshot],
        parent: Step | None = None,
    ) -> None:
        log: list[Rejection]
        every: dict[str, Rejection]
        if parent is None:
            log, every = failing, excluded
        elif failing:
            log, every = [*parent.log, *failing], {**parent.excluded_all, **excluded}
        else:
            log, every = parent.log, parent.excluded_all
        self.failing: Final = failing
        self.excluded: Final = excluded
        self.reasons: Final = reasons
        self.after: Final = after
        self.log: Final[list[Rejection]] = log
        self.excluded_all: Final[dict[str, Rejection]] = every
        self.next: Final[dict[Hashable, Step]] = {}


class WeightedRow:
    """A backend's values for some factors and their weighted sum (read only;
    a plain class, as ``Step``)."""

    def __init__(
        self, backend: BackendSnapshot, values: dict[str, float], total: float
    ) -> None:
        self.backend: Final = backend
        self.values: Final = values  # copy before changing
        self.total: Final = total  # sum of weight x value, in the factors' order


def weighted_row(
    backend: BackendSnapshot, factors: tuple[FactorEntry, ...]
) -> WeightedRow:
    """``backend``'s value for each factor and their weighted sum."""
    values: dict[str, float] = {}
    total = 0.0
    for name, factor, weight in factors:
        value = values[name] = factor(backend)
        total += weight * value
    return WeightedRow(backend, values, total)


_cache: dict[int, SnapshotIndex] = {}
_cache_lock = threading.Lock()


def index_for(config: ConfigSnapshot) -> SnapshotIndex:
    """Return the (cached) index of ``config``; builds it on first use."""
    index = _cache.get(id(config))
    if index is not None and index.config is config:
        return index
    index = SnapshotIndex(config)
    with _cache_lock:
        if len(_cache) >= _INDEX_CACHE_SIZE:
            # Drop the oldest entry (dicts keep insertion order).
            _cache.pop(next(iter(_cache)))
        _cache[id(config)] = index
    return index
