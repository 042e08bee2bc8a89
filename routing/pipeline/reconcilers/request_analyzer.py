"""Stage 1: what is being asked, under which constraints, and who could serve it."""

from __future__ import annotations

from routing.pipeline.intent import MODEL_NOT_FOUND, RoutingIntent
from routing.pipeline.routing import (
    analyse_body,
    combine_constraints,
    match_policy,
    policy_names,
)
from routing.pipeline.rules import AliasError, resolve_alias
from routing.pipeline.types import ErrorPolicy


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
        config = intent.context.config
        try:
            resolved, hops = resolve_alias(config.aliases, requested)
        except AliasError as exc:
            intent.alias_error = True
            intent.reject(MODEL_NOT_FOUND, f"Model '{requested}' not found: {exc}")
            return
        intent.model = resolved
        intent.alias_chain = hops
        names = policy_names(requested, hops, resolved)
        own = match_policy(intent.index, names)
        if own is not None and all(
            p.name != own.name for p in intent.inherited_policies
        ):
            intent.matched_policies = (*intent.inherited_policies, own)
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
        intent.constraints = intent.index.memo(
            key, lambda: combine_constraints(request, policies)
        )
        intent.requirements = analyse_body(
            intent.request.body, self.default_output_tokens
        )
        if hops:
            intent.annotate("alias_chain", [*hops, resolved])
        intent.annotate("matched_policies", [p.name for p in intent.matched_policies])

        serving = intent.index.serving.get(resolved, ())
        intent.annotate(
            "backends_not_serving", len(intent.index.backends_by_name) - len(serving)
        )
        if not serving:
            via = f" (resolved from '{requested}')" if resolved != requested else ""
            intent.reject(
                MODEL_NOT_FOUND,
                f"Model '{resolved}'{via} is not served by any configured backend.",
            )
            return
        intent.offers = intent.index.offers_for(resolved)
        available, unavailable = intent.index.availability(resolved)
        intent.exclude_many(unavailable)
        intent.add_candidates(available)
