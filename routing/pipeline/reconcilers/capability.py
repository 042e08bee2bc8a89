"""Stage 4: tier and capabilities (vision, tools, json mode, context window)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from routing.pipeline.intent import (
    CandidateStep,
    Rejection,
    RoutingIntent,
    prepare_step,
)
from routing.pipeline.types import BackendSnapshot, ErrorPolicy, ModelOffer, TierMode


class CapabilityReconciler:
    """Excludes candidates below the required tier or missing a capability.

    Capabilities come from the resolved model's offer on each backend: vision,
    tools and json mode when the request needs them, and a context window of at
    least the estimated input + output tokens. Tier: strict mode excludes every
    candidate below ``min_tier``; flexible mode does too unless *no* capable
    candidate meets it, in which case it keeps the highest lower tier available
    and adds a warning naming the required and the used tier (never silent).
    Annotates ``required_tier``, ``tier_mode``, ``capability_excluded`` (and
    ``tier_used`` when flexible mode went lower).
    """

    name = "capability"
    error_policy = ErrorPolicy.FAIL_OPEN

    def reconcile(self, intent: RoutingIntent) -> None:
        """Exclude incapable candidates, then apply the tier rule."""
        constraints = intent.constraints
        required = constraints.min_tier
        mode = constraints.tier_mode
        annotations = intent.annotations
        annotations["required_tier"] = required
        annotations["tier_mode"] = mode._value_  # = .value, minus 2 calls
        # Merge with an earlier run so running twice changes nothing.
        excluded: dict[str, str] = dict(annotations.get("capability_excluded", {}))
        req = intent.requirements
        offers = intent.offers
        model = intent.model
        needed = req.estimated_total_tokens
        by = intent.current_reconciler
        table = intent.index.memo(
            ("capability", model, req.vision, req.tools, req.json_mode, by),
            lambda: _table(intent, by),
        )
        capable: list[BackendSnapshot] = []
        origin = intent.step_origin
        fits = table.offers is offers and needed <= table.smallest_window
        step = _step(table, origin) if fits and origin is not None else None
        if step is not None and intent.apply_step(step, excluded):
            # Every window is large enough and the candidates are a memoised
            # set: excluding those that lack a capability is a memoised step.
            capable = intent.candidate_list()
        elif fits:
            # Every window is large enough: only a missing capability fails, and
            # its rejection is the same for every request.
            lacking = table.lacking
            rejections: list[Rejection] = []
            for backend in intent.candidates.values():
                rejection = lacking.get(backend.name)
                if rejection is None:
                    capable.append(backend)
                else:
                    rejections.append(rejection)
            intent.exclude_rejections(rejections, excluded)
        else:
            # Reasons depend only on (missing capabilities, context window):
            # build each distinct one once per request.
            verdicts: dict[tuple[bool, bool, bool, bool, int], tuple[str, str]] = {}
            failing: list[tuple[str, str, str]] = []
            for backend in intent.candidate_list():
                offer = offers.get(backend.name)
                if offer is None:
                    capable.append(backend)
                    continue
                no_vision = req.vision and not offer.vision
                no_tools = req.tools and not offer.tools
                no_json = req.json_mode and not offer.json_mode
                too_small = offer.context_window < needed
                if not (no_vision or no_tools or no_json or too_small):
                    capable.append(backend)
                    continue
                key = (no_vision, no_tools, no_json, too_small, offer.context_window)
                verdict = verdicts.get(key)
                if verdict is None:
                    verdict = verdicts[key] = _verdict(key, intent)
                failing.append((backend.name, *verdict))
            _apply(intent, failing, excluded)

        if required is not None and capable:
            floor = required
            if mode is TierMode.FLEXIBLE and not any(
                b.capability_tier >= required for b in capable
            ):
                floor = max(b.capability_tier for b in capable)
                annotations["tier_used"] = floor
                intent.warn(
                    f"No backend for '{model}' meets the required tier {required}; "
                    f"flexible mode used tier {floor} instead."
                )
            rule = (required, floor, constraints.min_tier_sources, mode, model, by)
            origin = intent.step_origin
            step = _tier_step(table, origin, rule) if origin is not None else None
            if step is None or not intent.apply_step(step, excluded):
                intent.exclude_rejections(_below_tier(capable, rule), excluded)
        annotations["capability_excluded"] = excluded


# ``tuple.__new__`` skips the Python-level ``__new__`` of named tuples (hot path).
_new_tuple = tuple.__new__
_MAX_STEPS = 32


class _Table(NamedTuple):
    """Per (snapshot, model, needed capabilities, reconciler): what fails always."""

    offers: Mapping[str, ModelOffer]  # the offers it was built from
    smallest_window: float  # of every offer (inf when none)
    lacking: dict[str, Rejection]  # backend -> rejection for a missing capability
    steps: dict[int, CandidateStep]  # id(candidate origin) -> its step
    tier_steps: dict[tuple[object, ...], CandidateStep]  # (id(origin), rule) -> step


def _step(table: _Table, origin: Mapping[str, BackendSnapshot]) -> CandidateStep | None:
    """The step excluding, from exactly ``origin``, the backends that lack a
    capability; memoised per origin (a step keeps its origin alive, so the id
    stays unique), for at most ``_MAX_STEPS`` origins."""
    step = table.steps.get(id(origin))
    if step is not None and step.before is origin:
        return step
    lacking = table.lacking
    step = prepare_step(
        origin, [lacking[b.name] for b in origin.values() if b.name in lacking]
    )
    if step is not None and len(table.steps) < _MAX_STEPS:
        table.steps[id(origin)] = step
    return step


# (required tier, floor, min_tier sources, tier mode, model, reconciler)
_TierRule = tuple[int, int, tuple[str, ...], TierMode, str, str]


def _below_tier(capable: list[BackendSnapshot], rule: _TierRule) -> list[Rejection]:
    """A rejection for each of ``capable`` below the floor tier, in order."""
    required, floor, min_tier_sources, mode, model, by = rule
    sources = ", ".join(min_tier_sources)
    action = f"Add or enable a tier-{required} backend serving '{model}'" + (
        ", or ask for tier_mode 'flexible'." if mode is TierMode.STRICT else "."
    )
    reasons: dict[int, str] = {}
    below: list[Rejection] = []
    for backend in capable:
        tier = backend.capability_tier
        if tier < floor:
            reason = reasons.get(tier)
            if reason is None:
                reason = reasons[tier] = (
                    f"capability tier {tier} is below the required tier "
                    f"{required} ({sources})"
                    + (
                        f"; flexible mode kept tier {floor} instead"
                        if floor != required
                        else ""
                    )
                )
            below.append(
                _new_tuple(Rejection, (backend.name, by, reason, action, model))
            )
    return below


def _tier_step(
    table: _Table, origin: Mapping[str, BackendSnapshot], rule: _TierRule
) -> CandidateStep | None:
    """The step excluding, from exactly ``origin``, the backends below the tier
    floor of ``rule``; memoised per (origin, rule) like ``_step``."""
    key = (id(origin), *rule[:4])
    step = table.tier_steps.get(key)
    if step is not None and step.before is origin:
        return step
    step = prepare_step(origin, _below_tier(list(origin.values()), rule))
    if step is not None and len(table.tier_steps) < _MAX_STEPS:
        table.tier_steps[key] = step
    return step


def _table(intent: RoutingIntent, by: str) -> _Table:
    req = intent.requirements
    model = intent.model
    offers = intent.index.offers_for(model)
    lacking: dict[str, Rejection] = {}
    for name, offer in offers.items():
        no_vision = req.vision and not offer.vision
        no_tools = req.tools and not offer.tools
        no_json = req.json_mode and not offer.json_mode
        if no_vision or no_tools or no_json:
            key = (no_vision, no_tools, no_json, False, offer.context_window)
            lacking[name] = Rejection(name, by, *_verdict(key, intent), model)
    smallest = min((o.context_window for o in offers.values()), default=math.inf)
    return _Table(offers, smallest, lacking, {}, {})


def _apply(
    intent: RoutingIntent,
    failing: list[tuple[str, str, str]],
    excluded: dict[str, str],
) -> None:
    """Exclude ``failing`` and record the newly excluded in ``excluded``."""
    if failing:
        reasons = {name: reason for name, reason, _ in failing}
        for name in intent.exclude_many(failing):
            excluded[name] = reasons[name]


def _verdict(
    key: tuple[bool, bool, bool, bool, int], intent: RoutingIntent
) -> tuple[str, str]:
    """(reason, suggested action) for a backend missing what the request needs."""
    no_vision, no_tools, no_json, too_small, window = key
    req = intent.requirements
    model = intent.model
    missing = [
        label
        for label, lacking in (
            ("vision", no_vision),
            ("tools", no_tools),
            ("json_mode", no_json),
        )
        if lacking
    ]
    problems = []
    action = ""
    if missing:
        problems.append(f"'{model}' here lacks {', '.join(missing)} support")
        action = (
            f"Use a backend whose '{model}' supports {', '.join(missing)}, "
            "or drop that part of the request."
        )
    if too_small:
        problems.append(
            f"context window {window} tokens is below the estimated "
            f"{req.estimated_total_tokens} ({req.estimated_input_tokens} in + "
            f"{req.estimated_output_tokens} out)"
        )
        action = action or (
            "Lower max_tokens or shorten the prompt, or use a backend with "
            f"a larger context window for '{model}'."
        )
    return "; ".join(problems), action
