"""Stage 4: tier and capabilities (vision, tools, json mode, context window)."""

from __future__ import annotations

from typing import ClassVar

from routing.pipeline.intent import Requirements, RoutingIntent
from routing.pipeline.types import BackendSnapshot, ErrorPolicy, ModelOffer, TierMode


class CapabilityReconciler:
    """Excludes candidates below the required tier or missing a capability.

    Capabilities come from the resolved model's offer on each backend: vision,
    tools and json mode when the request needs them, and a context window of at
    least the estimated input + output tokens. Tier: strict mode excludes every
    candidate below ``min_tier``; flexible mode does too unless *no* capable
    candidate meets it, in which case it keeps the highest lower tier available
    and adds a warning naming the required and the used tier (never silent).
    Annotates ``required_tier``, ``tier_mode`` (and ``tier_used`` when flexible
    mode went lower).
    """

    name: ClassVar[str] = "capability"
    error_policy: ClassVar[ErrorPolicy] = ErrorPolicy.FAIL_OPEN

    def reconcile(self, intent: RoutingIntent) -> None:
        """Exclude incapable candidates, then apply the tier rule."""
        required = intent.constraints.min_tier
        mode = intent.constraints.tier_mode
        model = intent.model
        intent.annotate("required_tier", required)
        intent.annotate("tier_mode", str(mode))
        req = intent.requirements
        if req.estimated_total_tokens <= intent.index.smallest_window(model):
            # Every context window fits: only the capabilities (few questions)
            # can fail, so the index keeps the answers.
            needs = (req.vision, req.tools, req.json_mode, model)
            intent.exclude_failing(lacking, needs)
        else:
            for backend in intent.candidate_list():
                offer = intent.offers.get(backend.name)
                if offer is not None and _lacks(offer, req):
                    intent.exclude(backend.name, *_why(offer, req, model))

        capable = intent.candidate_list()
        if required is None or not capable:
            return
        floor = required
        if mode is TierMode.FLEXIBLE and all(
            b.capability_tier < required for b in capable
        ):
            floor = max(b.capability_tier for b in capable)
            intent.annotate("tier_used", floor)
            intent.warn(
                f"No backend for '{model}' meets the required tier {required}; "
                f"flexible mode used tier {floor} instead."
            )
        sources = ", ".join(intent.constraints.min_tier_sources)
        intent.exclude_failing(below_tier, (required, floor, sources, mode, model))


def lacking(
    backend: BackendSnapshot,
    offer: ModelOffer | None,
    needs: tuple[bool, bool, bool, str],
) -> tuple[str, str] | None:
    """Why ``offer`` lacks vision, tools or json mode the request needs."""
    vision, tools, json_mode, model = needs
    req = Requirements(vision=vision, tools=tools, json_mode=json_mode)
    if offer is None or not _lacks(offer, req):
        return None
    return _why(offer, req, model)


def below_tier(
    backend: BackendSnapshot,
    offer: ModelOffer | None,
    rule: tuple[int, int, str, TierMode, str],
) -> tuple[str, str] | None:
    """Why ``backend`` is below the tier ``floor`` (the required tier, or lower
    in flexible mode)."""
    required, floor, sources, mode, model = rule
    tier = backend.capability_tier
    if tier >= floor:
        return None
    kept = f"; flexible mode kept tier {floor} instead" if floor != required else ""
    return (
        f"capability tier {tier} is below the required tier {required} "
        f"({sources}){kept}",
        f"Add or enable a tier-{required} backend serving '{model}'"
        + (", or ask for tier_mode 'flexible'." if mode is TierMode.STRICT else "."),
    )


def _lacks(offer: ModelOffer, req: Requirements) -> bool:
    return (
        (req.vision and not offer.vision)
        or (req.tools and not offer.tools)
        or (req.json_mode and not offer.json_mode)
        or offer.context_window < req.estimated_total_tokens
    )


def _why(offer: ModelOffer, req: Requirements, model: str) -> tuple[str, str]:
    """(reason, suggested action) for an offer missing what the request needs."""
    missing = [
        label
        for label, needed, offered in (
            ("vision", req.vision, offer.vision),
            ("tools", req.tools, offer.tools),
            ("json_mode", req.json_mode, offer.json_mode),
        )
        if needed and not offered
    ]
    problems = []
    action = ""
    if missing:
        problems.append(f"'{model}' here lacks {', '.join(missing)} support")
        action = (
            f"Use a backend whose '{model}' supports {', '.join(missing)}, "
            "or drop that part of the request."
        )
    if offer.context_window < req.estimated_total_tokens:
        problems.append(
            f"context window {offer.context_window} tokens is below the estimated "
            f"{req.estimated_total_tokens} ({req.estimated_input_tokens} in + "
            f"{req.estimated_output_tokens} out)"
        )
        action = action or (
            "Lower max_tokens or shorten the prompt, or use a backend with "
            f"a larger context window for '{model}'."
        )
    return "; ".join(problems), action
