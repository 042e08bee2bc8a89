"""Stage 1: what is being asked, under which constraints, and who could serve it."""

from __future__ import annotations

from typing import ClassVar

from routing.pipeline.analysis import analyse_body, constraints_for
from routing.pipeline.intent import MODEL_NOT_FOUND, RoutingIntent
from routing.pipeline.types import BackendSnapshot, ErrorPolicy, Health, ModelOffer


class RequestAnalyzer:
    """Resolves the alias, matches the policy, derives requirements, finds candidates.

    Candidates are the enabled, not-unhealthy backends offering the resolved
    model (``unknown`` and ``loading`` stay candidates). Disabled and unhealthy
    backends offering it are excluded with a reason. Backends that do not offer
    the model at all are not listed one by one (that would be O(fleet) per
    request); their count is annotated as ``backends_not_serving``. When no
    backend offers the model the decision is a ``model_not_found`` reject.
    """

    name: ClassVar[str] = "request_analyzer"
    error_policy: ClassVar[ErrorPolicy] = ErrorPolicy.FAIL_CLOSED

    def __init__(self, *, default_output_tokens: int = 256) -> None:
        self.default_output_tokens = default_output_tokens

    def reconcile(self, intent: RoutingIntent) -> None:
        """Fill the intent's model, policies, constraints, requirements, candidates."""
        index = intent.index
        requested = intent.requested_model
        resolution = index.resolve(requested)
        if isinstance(resolution, str):
            intent.alias_error = True
            intent.reject(MODEL_NOT_FOUND, resolution)
            return
        model, hops, own = resolution
        intent.model = model
        intent.alias_chain = hops
        inherited = intent.inherited_policies
        if own is not None and all(p.name != own.name for p in inherited):
            intent.matched_policies = (*inherited, own)
        policies = intent.matched_policies
        intent.constraints = constraints_for(index, intent.request, policies)
        intent.requirements = analyse_body(
            intent.request.body, self.default_output_tokens
        )
        if hops:
            intent.annotate("alias_chain", [*hops, model])
        intent.annotate("matched_policies", [p.name for p in policies])
        serving = index.serving.get(model, ())
        intent.annotate(
            "backends_not_serving", len(index.backends_by_name) - len(serving)
        )
        if not serving:
            via = f" (resolved from '{requested}')" if model != requested else ""
            intent.reject(
                MODEL_NOT_FOUND,
                f"Model '{model}'{via} is not served by any configured backend.",
            )
            return
        intent.offers = index.offers_for(model)
        intent.add_serving()
        intent.exclude_failing(unavailable, None)


def unavailable(
    backend: BackendSnapshot, offer: ModelOffer | None, question: None
) -> tuple[str, str] | None:
    """Why ``backend`` cannot serve at all: disabled, or unhealthy."""
    if not backend.enabled:
        return "disabled by an operator", f"Enable backend '{backend.name}'."
    if backend.health == Health.UNHEALTHY:
        if backend.health_reason:
            return (
                f"unhealthy ({backend.health_reason})",
                f"Wait, or check backend '{backend.name}' and its upstream.",
            )
        return (
            "unhealthy (failed its last health check)",
            f"Check backend '{backend.name}' and its health probe.",
        )
    return None
