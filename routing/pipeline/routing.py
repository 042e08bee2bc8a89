"""Routing rules around the reconcilers, and ``route()``, the orchestration.

- ``analyse_body``: requirements from an OpenAI chat-completions body.
- ``match_policy`` / ``combine_constraints``: the first matching policy (over the
  requested name, every alias hop and the resolved model) and the
  never-relaxing combination of request and policy constraints.
- ``route``: runs the pipeline for the requested model and, if that is a
  reject, for each model of its fallback chain, carrying every constraint
  (request + every policy matched so far) into each fallback attempt.
- ``suggest_alternatives``: on a reject only, the way out: the other models
  (and aliases) that would serve the request, or the served names closest to a
  model that was not found.

A fallback chain is the ``config.fallbacks`` entry of the first name found among
the requested name, the alias hops and the resolved model. It is tried when the
primary attempt is a ``no_viable_backend`` or ``model_not_found`` reject (not on
alias errors or pipeline errors), and never when a matched policy has
``fallback_allowed=false``; a fallback whose own policy forbids fallbacks is
tried but ends the chain.
"""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from routing.pipeline.decision import RoutingResult, build_result
from routing.pipeline.index import SnapshotIndex, index_for
from routing.pipeline.intent import (
    MODEL_NOT_FOUND,
    NO_VIABLE_BACKEND,
    PIPELINE_ERROR,
    Constraints,
    Requirements,
    RoutingContext,
    RoutingIntent,
    RoutingRequest,
)
from routing.pipeline.reconcilers.budget import FLOAT_SLACK_USD, budget_status
from routing.pipeline.rules import (
    AliasError,
    PrivacyConstraint,
    parse_privacy,
    resolve_alias,
)
from routing.pipeline.scoring import estimate_cost
from routing.pipeline.types import (
    BackendSnapshot,
    BudgetSnapshot,
    BudgetStatus,
    HardLimitAction,
    Health,
    ModelOffer,
    Outcome,
    PolicySnapshot,
    PrivacyLevel,
    TierMode,
)

_IMAGE_PART_TYPES = frozenset({"image_url", "image", "input_image"})
_TEXT_PART_TYPES = frozenset({"text", "input_text"})
_JSON_FORMATS = frozenset({"json_object", "json_schema"})

#: Input tokens of one image part, the way OpenAI bills images. ``detail: "low"``
#: is a flat 85 tokens. ``high``/``auto``/absent is 85 + 170 per 512-px tile
#: after scaling the image to fit 2048x2048 and then its shortest side to 768 px;
#: Nexus never fetches images, so the size is unknown and every such image is
#: estimated as a 1024x1024 one: 4 tiles, 85 + 4 x 170 = 765 tokens.
IMAGE_TOKENS_LOW_DETAIL = 85
IMAGE_TOKENS_DEFAULT = 765

# -- requirements ------------------------------------------------------------------


def analyse_body(body: Mapping[str, Any], default_output_tokens: int) -> Requirements:
    """Derive requirements from a chat-completions body; never raises on odd shapes.

    Vision if any content part is an image; tools if ``tools`` is a non-empty
    list; json mode if ``response_format.type`` is json_object/json_schema;
    input tokens = ceil(characters of text content / 4) + each image's tokens
    (``image_tokens``); output tokens =
    ``max_tokens`` (or ``max_completion_tokens``) when a positive int, else
    ``default_output_tokens``.
    """
    # ``type(x) is dict`` first: isinstance against the Mapping ABC is slow.
    if not (type(body) is dict or isinstance(body, Mapping)):
        return Requirements(estimated_output_tokens=default_output_tokens)
    chars = 0
    images = 0
    vision = False
    messages = body.get("messages")
    if isinstance(messages, (list, tuple)):
        for message in messages:
            if not (type(message) is dict or isinstance(message, Mapping)):
                continue
            content = message.get("content")
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, (list, tuple)):
                for part in content:
                    if not (type(part) is dict or isinstance(part, Mapping)):
                        continue
                    kind = part.get("type")
                    if kind in _TEXT_PART_TYPES:
                        text = part.get("text")
                        if isinstance(text, str):
                            chars += len(text)
                    elif kind in _IMAGE_PART_TYPES:
                        vision = True
                        images += image_tokens(part)
    tools = body.get("tools")
    response_format = body.get("response_format")
    json_mode = (
        response_format is not None
        and (type(response_format) is dict or isinstance(response_format, Mapping))
        and response_format.get("type") in _JSON_FORMATS
    )
    output = body.get("max_tokens")
    if output is None:
        output = body.get("max_completion_tokens")
    if isinstance(output, bool) or not isinstance(output, int) or output < 1:
        output = default_output_tokens
    return Requirements(
        vision=vision,
        tools=isinstance(tools, (list, tuple)) and len(tools) > 0,
        json_mode=json_mode,
        estimated_input_tokens=math.ceil(chars / 4) + images,
        estimated_output_tokens=output,
    )


def image_tokens(part: Mapping[str, Any]) -> int:
    """Estimated input tokens of one image part, by its ``detail`` level.

    ``detail`` is read from ``image_url.detail`` (chat completions) or from the
    part itself (``input_image``); ``"low"`` costs ``IMAGE_TOKENS_LOW_DETAIL``,
    anything else (``high``, ``auto``, absent) ``IMAGE_TOKENS_DEFAULT``.
    """
    url = part.get("image_url")
    detail = url.get("detail") if isinstance(url, Mapping) else part.get("detail")
    return IMAGE_TOKENS_LOW_DETAIL if detail == "low" else IMAGE_TOKENS_DEFAULT


# -- policies and constraints ------------------------------------------------------


def policy_names(
    requested: str, alias_chain: tuple[str, ...], resolved: str
) -> tuple[str, ...]:
    """Every name a policy may match: requested, each alias hop, resolved."""
    return tuple(dict.fromkeys((requested, *alias_chain, resolved)))


def match_policy(index: SnapshotIndex, names: tuple[str, ...]) -> PolicySnapshot | None:
    """The first policy by (order, name) matching any of ``names``."""
    return index.first_matching_policy(names)


def _policy_privacy(policy: PolicySnapshot) -> PrivacyConstraint:
    try:
        return parse_privacy(policy.privacy)
    except ValueError:
        # A policy that cannot be parsed must not relax anything: treat it as
        # restricted (fail closed) rather than unrestricted.
        return PrivacyConstraint(PrivacyLevel.RESTRICTED)


def combine_constraints(
    request: RoutingRequest, policies: Sequence[PolicySnapshot]
) -> Constraints:
    """Combine request and policy constraints; the result is at least as strict
    as each source."""
    stated: list[tuple[PrivacyConstraint, str]] = []
    if request.privacy is not None:
        stated.append((request.privacy, request.source_of("privacy")))
    for policy in policies:
        stated.append((_policy_privacy(policy), f"policy:{policy.name}"))
    privacy: list[PrivacyConstraint] = []
    privacy_sources: list[str] = []
    for constraint, source in stated:
        if constraint.level is PrivacyLevel.UNRESTRICTED:
            continue
        if constraint not in privacy:
            privacy.append(constraint)
        privacy_sources.append(source)
    if not privacy:
        privacy_sources = [source for _, source in stated]

    tiers: list[tuple[int, str]] = []
    if request.min_tier is not None:
        tiers.append((request.min_tier, request.source_of("min_tier")))
    tiers.extend((p.min_tier, f"policy:{p.name}") for p in policies if p.min_tier)
    min_tier = max((t for t, _ in tiers), default=None)
    tier_sources = tuple(s for t, s in tiers if t == min_tier)

    tier_mode = TierMode.STRICT
    tier_mode_sources: tuple[str, ...] = ("default",)
    if request.tier_mode is not None:
        tier_mode_sources = (request.source_of("tier_mode"),)
        if request.tier_mode == TierMode.FLEXIBLE:
            tier_mode = TierMode.FLEXIBLE
            forbidding = tuple(
                f"policy:{p.name}" for p in policies if not p.fallback_allowed
            )
            if forbidding:
                tier_mode = TierMode.STRICT
                tier_mode_sources = forbidding

    caps: list[tuple[float, str]] = []
    if request.max_cost_usd is not None:
        caps.append((request.max_cost_usd, request.source_of("max_cost_usd")))
    caps.extend(
        (p.max_cost_per_request_usd, f"policy:{p.name}")
        for p in policies
        if p.max_cost_per_request_usd is not None
    )
    max_cost = min((c for c, _ in caps), default=None)
    cost_sources = tuple(s for c, s in caps if c == max_cost)

    return Constraints(
        privacy=tuple(privacy),
        privacy_sources=tuple(dict.fromkeys(privacy_sources)),
        min_tier=min_tier,
        min_tier_sources=tier_sources,
        tier_mode=tier_mode,
        tier_mode_sources=tier_mode_sources,
        max_cost_usd=max_cost,
        max_cost_sources=cost_sources,
    )


# -- orchestration -----------------------------------------------------------------


def fallback_chain(intent: RoutingIntent) -> tuple[str, ...]:
    """Fallback models configured for the requested, an alias hop or resolved name."""
    fallbacks = intent.context.config.fallbacks
    names = policy_names(intent.requested_model, intent.alias_chain, intent.model)
    for name in names:
        chain = fallbacks.get(name)
        if chain:
            return tuple(chain)
    return ()


def _allows_fallback(intent: RoutingIntent) -> bool:
    return all(policy.fallback_allowed for policy in intent.matched_policies)


def route(
    execute: Callable[[RoutingIntent], None],
    request: RoutingRequest,
    context: RoutingContext,
) -> RoutingResult:
    """Route ``request``: the primary model, then its fallback chain if needed."""
    start = time.perf_counter_ns()
    index = index_for(context.config)
    primary = RoutingIntent(request, context, index)
    execute(primary)
    attempts = [primary]
    if _should_fall_back(primary):
        tried = {primary.requested_model, primary.model}
        inherited = primary.matched_policies
        for model in fallback_chain(primary):
            if model in tried:
                continue
            attempt = RoutingIntent(
                request,
                context,
                index,
                requested_model=model,
                inherited_policies=inherited,
            )
            execute(attempt)
            attempts.append(attempt)
            tried.update((attempt.requested_model, attempt.model))
            inherited = attempt.matched_policies
            if not _should_fall_back(attempt):
                break
    duration_us = (time.perf_counter_ns() - start) / 1000.0
    hint = suggest_alternatives(attempts) if attempts[-1].outcome is _REJECT else None
    return build_result(attempts, duration_us=duration_us, hint=hint)


_REJECT = Outcome.REJECT


def _should_fall_back(attempt: RoutingIntent) -> bool:
    return (
        attempt.outcome is Outcome.REJECT
        and attempt.error_type in (NO_VIABLE_BACKEND, MODEL_NOT_FOUND)
        and not attempt.alias_error
        and _allows_fallback(attempt)
    )


# -- the way out of a reject (computed only for rejects) ------------------------------

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
    policy = match_policy(index, (model,))
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
    if not constraints.allows_zone(backend.privacy_zone, backend.zone_private):
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
    cost = estimate_cost(offer, req)
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
        if budget_status(budget) is BudgetStatus.HARD_LIMIT and (
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
