"""Stage-1 rules, used by ``request_analyzer``: what a request asks for.

- ``analyse_body``: requirements from an OpenAI chat-completions body.
- ``combine_constraints``: the never-relaxing combination of request and
  policy constraints (``constraints_for`` keeps each combination in the
  snapshot's index). The alias resolution and the first matching policy (over
  the requested name, every alias hop and the resolved model: ``policy_names``)
  come from ``SnapshotIndex.resolve``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from routing.pipeline.index import SnapshotIndex
from routing.pipeline.intent import Constraints, Requirements, RoutingRequest
from routing.pipeline.rules import PrivacyConstraint, parse_privacy
from routing.pipeline.types import PolicySnapshot, PrivacyLevel, TierMode

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


def constraints_for(
    index: SnapshotIndex, request: RoutingRequest, policies: tuple[PolicySnapshot, ...]
) -> Constraints:
    """``combine_constraints``, kept in ``index`` per (request constraints,
    policies): few distinct combinations occur."""
    key = (
        "constraints",
        request.privacy,
        request.min_tier,
        request.tier_mode,
        request.max_cost_usd,
        tuple(request.sources.items()),
        policies,
    )
    return index.memo(key, lambda: combine_constraints(request, policies))
