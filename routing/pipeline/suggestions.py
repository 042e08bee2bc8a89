"""The way out of a reject (computed only for rejects, off the hot path).

- ``suggest_alternatives``: the other served models (and their aliases) that
  would serve the request if it asked for them, or, for a model that is not
  found, the served names closest to it ("Did you mean ...?").
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from routing.pipeline.analysis import combine_constraints
from routing.pipeline.budgets import FLOAT_SLACK_USD, estimate_cost, snapshot_status
from routing.pipeline.index import SnapshotIndex
from routing.pipeline.intent import (
    MODEL_NOT_FOUND,
    PIPELINE_ERROR,
    Constraints,
    Requirements,
    RoutingIntent,
)
from routing.pipeline.rules import AliasError, resolve_alias
from routing.pipeline.types import (
    BackendSnapshot,
    BudgetSnapshot,
    BudgetStatus,
    HardLimitAction,
    Health,
    ModelOffer,
    TierMode,
)

MAX_ALTERNATIVES = 5
DID_YOU_MEAN_COUNT = 3
DID_YOU_MEAN_CUTOFF = 0.6


def suggest_alternatives(attempts: Sequence[RoutingIntent]) -> str | None:
    """One sentence naming the way out of a rejected request, or None.

    - ``model_not_found`` (every attempt): the served model names and aliases
      closest to the (resolved) name, by ``difflib.get_close_matches`` (at most
      ``DID_YOU_MEAN_COUNT``, cutoff ``DID_YOU_MEAN_CUTOFF``): "Did you mean
      'llama3.1:8b'?". Not for alias errors (loops, long chains).
    - ``no_viable_backend``: the other served models, by name, that would serve
      the request if it asked for them (``would_serve``), at most
      ``MAX_ALTERNATIVES``, each with the aliases that resolve to it.
    - pipeline errors: None.

    Runs only after a reject; O(backend offers + aliases) of the snapshot.
    """
    if any(a.error_type == PIPELINE_ERROR for a in attempts):
        return None
    first = attempts[0]
    if all(a.error_type == MODEL_NOT_FOUND for a in attempts):
        return None if first.alias_error else did_you_mean(first.index, first.model)
    analysed = next((a for a in attempts if not a.alias_error), None)
    if analysed is None:
        return None
    tried = {name for a in attempts for name in (a.requested_model, a.model)}
    index = first.index
    aliases = _aliases_by_model(index)
    found: list[str] = []
    for model in sorted(index.serving):
        if model in tried or not would_serve(analysed, model):
            continue
        names = [a for a in aliases.get(model, ()) if a not in tried]
        found.append(
            f"'{model}'"
            + (f" (alias {', '.join(repr(a) for a in names)})" if names else "")
        )
    if not found:
        return None
    more = len(found) - MAX_ALTERNATIVES
    listed = ", ".join(found[:MAX_ALTERNATIVES]) + (
        f" and {more} more" if more > 0 else ""
    )
    return f"Models that would serve this request: {listed}."


def did_you_mean(index: SnapshotIndex, name: str) -> str | None:
    """ "Did you mean 'x'?" over served model names and aliases, or None."""
    names = index.memo(
        ("served_names",), lambda: sorted({*index.serving, *index.config.aliases})
    )
    close = [
        n
        for n in difflib.get_close_matches(
            name, names, n=DID_YOU_MEAN_COUNT, cutoff=DID_YOU_MEAN_CUTOFF
        )
        if n != name
    ]
    if not close:
        return None
    quoted = [f"'{n}'" for n in close]
    listed = (
        quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    )
    return f"Did you mean {listed}?"


def would_serve(attempt: RoutingIntent, model: str) -> bool:
    """Whether asking for ``model`` instead would pass the default reconcilers.

    Same request (requirements, request constraints, budgets), with the
    constraints ``model`` itself gets: the request's combined with the first
    policy matching ``model``. True when one of its enabled, not-unhealthy
    backends passes privacy, tier (strict mode), capabilities, context window,
    cost cap and budgets.
    """
    index = attempt.index
    request = attempt.request
    policy = index.first_matching_policy((model,))
    constraints = combine_constraints(request, (policy,) if policy else ())
    offers = index.offers_for(model)
    budgets = attempt.context.budgets
    return any(
        _backend_passes(
            backend, offers[backend.name], attempt.requirements, constraints, budgets
        )
        for backend in index.serving.get(model, ())
    )


def _backend_passes(
    backend: BackendSnapshot,
    offer: ModelOffer,
    req: Requirements,
    constraints: Constraints,
    budgets: Sequence[BudgetSnapshot],
) -> bool:
    if not backend.enabled or backend.health == Health.UNHEALTHY:
        return False
    zone, private = backend.privacy_zone, backend.zone_private
    if not all(c.allows(zone=zone, zone_private=private) for c in constraints.privacy):
        return False
    tier = constraints.min_tier
    if (
        tier is not None
        and constraints.tier_mode is TierMode.STRICT
        and backend.capability_tier < tier
    ):
        return False
    if (
        (req.vision and not offer.vision)
        or (req.tools and not offer.tools)
        or (req.json_mode and not offer.json_mode)
        or offer.context_window < req.estimated_total_tokens
    ):
        return False
    cost = estimate_cost(offer, req.estimated_input_tokens, req.estimated_output_tokens)
    cap = constraints.max_cost_usd
    if cap is not None and not cost <= cap:
        return False
    return _budgets_allow(budgets, cost)


def _budgets_allow(budgets: Sequence[BudgetSnapshot], cost: float) -> bool:
    """The budget reconciler's exclusions for one estimate (see ``budget``)."""
    for budget in budgets:
        limit = budget.monthly_limit_usd
        action = budget.hard_limit_action
        if limit is None or action == HardLimitAction.WARN:
            continue
        if snapshot_status(budget) is BudgetStatus.HARD_LIMIT and (
            action == HardLimitAction.BLOCK_ALL or cost > 0.0
        ):
            return False
        used = budget.spent_usd + budget.reserved_usd
        if cost > 0.0 and cost > limit - used + FLOAT_SLACK_USD:
            return False
    return True


def _aliases_by_model(index: SnapshotIndex) -> dict[str, tuple[str, ...]]:
    """Model -> the aliases resolving to it (sorted); memoised per snapshot."""

    def build() -> dict[str, tuple[str, ...]]:
        aliases = index.config.aliases
        found: dict[str, list[str]] = {}
        for alias in sorted(aliases):
            try:
                model, _ = resolve_alias(aliases, alias)
            except AliasError:
                continue
            found.setdefault(model, []).append(alias)
        return {model: tuple(names) for model, names in found.items()}

    return index.memo(("aliases_by_model",), build)
