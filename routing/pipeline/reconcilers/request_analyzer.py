"""Stage 1: what is being asked, under which constraints, and who could serve it."""

from __future__ import annotations

from typing import NamedTuple

from routing.pipeline.intent import (
    MODEL_NOT_FOUND,
    CandidateStep,
    Rejection,
    RoutingIntent,
    initial_step,
)
from routing.pipeline.routing import (
    analyse_body,
    combine_constraints,
    match_policy,
    policy_names,
)
from routing.pipeline.rules import AliasError, resolve_alias
from routing.pipeline.types import BackendSnapshot, ErrorPolicy, PolicySnapshot


class RequestAnalyzer:
    """Resolves the alias, matches the policy, derives requirements, finds candidates.

    Candidates are the enabled, not-unhealthy backends offering the resolved
    model (``unknown`` and ``loading`` stay candidates). Disabled and unhealthy
    backends offering it are excluded with a reason. Backends that do not offer
    the model at all are not listed one by one (that would be O(fleet) per
    request); their count is annotated as ``backends_not_serving``. When no
    backend offers the model the decision is a ``model_not_found`` reject.
    """

    name = "request_analyzer"
    error_policy = ErrorPolicy.FAIL_CLOSED

    def __init__(self, *, default_output_tokens: int = 256) -> None:
        self.default_output_tokens = default_output_tokens

    def reconcile(self, intent: RoutingIntent) -> None:
        """Fill the intent's model, policies, constraints, requirements, candidates."""
        requested = intent.requested_model
        index = intent.index
        inherited = intent.inherited_policies
        resolution = index.memo(
            ("resolution", requested, inherited),
            lambda: _resolve(intent, requested, inherited),
        )
        if isinstance(resolution, str):
            intent.alias_error = True
            intent.reject(MODEL_NOT_FOUND, resolution)
            return
        resolved, hops, own = resolution
        intent.model = resolved
        intent.alias_chain = hops
        if own is not None:
            intent.matched_policies = (*inherited, own)
        request = intent.request
        policies = intent.matched_policies
        key = (
            "constraints",
            request.privacy,
            request.min_tier,
            request.tier_mode,
            request.max_cost_usd,
            tuple(request.sources.items()),
            policies,
        )
        intent.constraints = index.memo(
            key, lambda: combine_constraints(request, policies)
        )
        intent.requirements = analyse_body(request.body, self.default_output_tokens)
        annotations = intent.annotations
        if hops:
            annotations["alias_chain"] = [*hops, resolved]
        annotations["matched_policies"] = [p.name for p in policies]

        serving = index.serving.get(resolved, ())
        not_serving = len(index.backends_by_name) - len(serving)
        annotations["backends_not_serving"] = not_serving
        if not serving:
            via = f" (resolved from '{requested}')" if resolved != requested else ""
            intent.reject(
                MODEL_NOT_FOUND,
                f"Model '{resolved}'{via} is not served by any configured backend.",
            )
            return
        intent.offers = index.offers_for(resolved)
        by = intent.current_reconciler
        start = index.memo(("start", resolved, by), lambda: _start(intent, by))
        if start.step is None or not intent.apply_step(start.step):
            intent.exclude_rejections(start.unavailable)
            intent.add_candidates(start.available, memoised=True)


def _resolve(
    intent: RoutingIntent, requested: str, inherited: tuple[PolicySnapshot, ...]
) -> str | tuple[str, tuple[str, ...], PolicySnapshot | None]:
    """(resolved model, alias hops, its own matching policy unless inherited), or
    the alias error message; depends only on config, requested name, inherited."""
    try:
        resolved, hops = resolve_alias(intent.index.config.aliases, requested)
    except AliasError as exc:
        return f"Model '{requested}' not found: {exc}"
    own = match_policy(intent.index, policy_names(requested, hops, resolved))
    if own is not None and any(p.name == own.name for p in inherited):
        own = None
    return resolved, hops, own


class _Start(NamedTuple):
    available: dict[str, BackendSnapshot]
    unavailable: tuple[Rejection, ...]
    step: CandidateStep | None  # both at once, for a fresh intent


def _start(intent: RoutingIntent, by: str) -> _Start:
    """The available backends serving the intent's model and a rejection for each
    disabled or unhealthy one; depends only on config, model and ``by``."""
    model = intent.model
    available, unavailable = intent.index.availability(model)
    rejections = tuple(
        Rejection(name, by, reason, action, model)
        for name, reason, action in unavailable
    )
    return _Start(available, rejections, initial_step(available, rejections))
