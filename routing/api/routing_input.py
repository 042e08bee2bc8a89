"""Parsing a route call: the OpenAI-style body, the ``nexus`` object and headers.

Constraints may come from the body's ``nexus`` object or from ``X-Nexus-*``
headers; when both state one, they are combined so the result is at least as
strict as each (highest tier, lowest cost cap, strict beats flexible); two
different privacy values are refused rather than guessed at.
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

from django.conf import settings
from rest_framework import serializers

from routing.api.fields import PlainFloatField, PlainIntegerField
from routing.errors import NexusError
from routing.numbers import is_plain_number
from routing.pipeline import RoutingRequest
from routing.pipeline.rules import ConfigRuleError, parse_privacy
from routing.pipeline.types import TierMode

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}\Z")  # \Z: no trailing newline


class NexusOptionsSerializer(serializers.Serializer):
    privacy = serializers.CharField(required=False, max_length=80)
    min_tier = PlainIntegerField(required=False, min_value=1, max_value=5)
    tier_mode = serializers.ChoiceField(
        required=False, choices=[m.value for m in TierMode]
    )
    max_cost_usd = PlainFloatField(required=False, min_value=0.0)
    dry_run = serializers.BooleanField(required=False, default=False)

    def validate_privacy(self, value: str) -> str:
        try:
            return str(parse_privacy(value))
        except ConfigRuleError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_max_cost_usd(self, value: float) -> float:
        if value <= 0 or value != value or value == float("inf"):
            raise serializers.ValidationError("Must be a positive number of USD.")
        return value

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                known = ", ".join(self.fields)
                raise serializers.ValidationError(
                    {key: [f"Unknown option; known: {known}."] for key in unknown}
                )
        return super().to_internal_value(data)


#: Message roles of the OpenAI chat-completions shape.
ROLES = ("system", "user", "assistant", "tool", "developer", "function")
#: Content part types accepted in ``messages[].content``: OpenAI chat
#: completions' (text, image_url, input_audio, file, refusal) plus the
#: Responses-API and Anthropic-style ones the pipeline also reads
#: (input_text, input_image, image).
PART_TYPES = (
    "text",
    "image_url",
    "input_audio",
    "file",
    "refusal",
    "input_text",
    "input_image",
    "image",
)


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField(max_length=64)
    content = serializers.JSONField(required=False, allow_null=True)

    def validate_role(self, value: str) -> str:
        if value not in ROLES:
            raise serializers.ValidationError(
                f"Unknown role {value!r}; use one of {', '.join(ROLES)}."
            )
        return value

    def validate_content(self, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if not (isinstance(value, list) and all(isinstance(p, dict) for p in value)):
            raise serializers.ValidationError(
                "Content must be a string, null, or a list of content parts (objects)."
            )
        errors = {
            str(index): {"type": [_part_type_error(part.get("type"))]}
            for index, part in enumerate(value)
            if part.get("type") not in PART_TYPES
        }
        if errors:
            raise serializers.ValidationError(errors)
        return value


def _part_type_error(kind: Any) -> str:
    known = ", ".join(PART_TYPES)
    if kind is None:
        return f"Each content part needs a 'type'; use one of {known}."
    return f"Unknown content part type {kind!r}; use one of {known}."


class RouteInputSerializer(serializers.Serializer):
    """An OpenAI chat-completions body; other OpenAI fields are accepted and ignored."""

    model = serializers.CharField(max_length=200)
    # Counts are capped before validation: see ``_check_complexity``.
    messages = MessageSerializer(many=True, allow_empty=False)
    tools = serializers.ListField(child=serializers.DictField(), required=False)
    response_format = serializers.DictField(required=False)
    max_tokens = PlainIntegerField(
        required=False, min_value=1, max_value=10_000_000, allow_null=True
    )
    nexus = NexusOptionsSerializer(required=False)


_validators = threading.local()


def _check_complexity(data: Any) -> None:
    """Refuse a body with more messages or content parts than the settings allow.

    Runs before the serializer, so that an oversized body costs one count
    rather than a validation of every message.
    """
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list):
        return
    max_messages = settings.NEXUS_MAX_MESSAGES
    if len(messages) > max_messages:
        raise serializers.ValidationError(
            {
                "messages": [
                    f"At most {max_messages} messages per request; got "
                    f"{len(messages)}. Shorten the conversation."
                ]
            }
        )
    max_parts, total = settings.NEXUS_MAX_CONTENT_PARTS, 0
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            total += len(content)
            if total > max_parts:
                raise serializers.ValidationError(
                    {
                        f"messages.{index}.content": [
                            f"At most {max_parts} content parts per request, in all "
                            "messages together; this message goes past it. Send "
                            "fewer parts (e.g. join text parts)."
                        ]
                    }
                )


def validated_route_body(data: Any) -> dict[str, Any]:
    """``data`` validated by ``RouteInputSerializer`` (raises DRF's
    ``ValidationError`` with the same detail as ``is_valid(raise_exception=True)``).

    DRF deep-copies a serializer's whole field tree for every new instance,
    which cost more than the rest of validation on the route hot path; each
    thread validates with one long-lived instance instead (``run_validation``
    keeps no per-call state on the serializer or its fields).
    """
    _check_complexity(data)
    serializer = getattr(_validators, "route", None)
    if serializer is None:
        serializer = _validators.route = RouteInputSerializer()
    return dict(serializer.run_validation(data))


def _header_int(headers: Any, name: str, low: int, high: int) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    value = int(raw) if is_plain_number(raw, whole=True) and len(raw) < 20 else low - 1
    if not low <= value <= high:
        raise NexusError(
            f"{name} must be a whole number from {low} to {high}; got {raw!r}.",
            fields={name: [f"Must be {low}-{high}."]},
        )
    return value


def _header_bool(headers: Any, name: str) -> bool:
    raw = headers.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in {"true", "1", "yes"}:
        return True
    if value in {"false", "0", "no"}:
        return False
    raise NexusError(
        f"{name} must be true or false; got {raw!r}.", fields={name: ["true or false"]}
    )


def _header_constraints(headers: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    privacy = headers.get("X-Nexus-Privacy")
    if privacy is not None:
        try:
            found["privacy"] = str(parse_privacy(privacy))
        except ConfigRuleError as exc:
            raise NexusError(str(exc), fields={"X-Nexus-Privacy": [str(exc)]}) from None
    tier = _header_int(headers, "X-Nexus-Min-Tier", 1, 5)
    if tier is not None:
        found["min_tier"] = tier
    strict = _header_bool(headers, "X-Nexus-Strict")
    flexible = _header_bool(headers, "X-Nexus-Flexible")
    if strict and flexible:
        raise NexusError(
            "X-Nexus-Strict and X-Nexus-Flexible cannot both be true.",
            fields={"X-Nexus-Flexible": ["Conflicts with X-Nexus-Strict."]},
        )
    if strict or flexible:
        found["tier_mode"] = (
            TierMode.STRICT.value if strict else TierMode.FLEXIBLE.value
        )
    cost = headers.get("X-Nexus-Max-Cost")
    if cost is not None:
        value = float(cost) if is_plain_number(cost) else -1.0
        if not 0 < value < float("inf"):
            raise NexusError(
                "X-Nexus-Max-Cost must be a positive number of USD in plain decimal "
                f"notation (e.g. 0.05); got {cost!r}.",
                fields={"X-Nexus-Max-Cost": ["Positive number of USD, e.g. 0.05."]},
            )
        found["max_cost_usd"] = value
    return found


def _combine(
    body: dict[str, Any], headers: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in ("privacy", "min_tier", "tier_mode", "max_cost_usd"):
        in_body, in_header = body.get(key), headers.get(key)
        if in_body is None and in_header is None:
            continue
        if in_body is None or in_header is None:
            merged[key] = in_body if in_header is None else in_header
            sources[key] = "body" if in_header is None else "header"
            continue
        sources[key] = "body+header"
        if key == "privacy" and in_body != in_header:
            raise NexusError(
                f"Privacy is {in_body!r} in the body but {in_header!r} in "
                "X-Nexus-Privacy; send one value.",
                fields={"nexus.privacy": ["Conflicts with X-Nexus-Privacy."]},
            )
        if key == "min_tier":
            merged[key] = max(in_body, in_header)
        elif key == "max_cost_usd":
            merged[key] = min(in_body, in_header)
        elif key == "tier_mode":
            both = {in_body, in_header}
            merged[key] = "strict" if "strict" in both else "flexible"
        else:
            merged[key] = in_body
    return merged, sources


def routing_request_from(
    data: dict[str, Any], headers: Any
) -> tuple[RoutingRequest, bool]:
    """A validated body + headers as a pipeline request, and the dry-run flag."""
    nexus = dict(data.get("nexus") or {})
    dry_run = bool(nexus.pop("dry_run", False))
    merged, sources = _combine(nexus, _header_constraints(headers))
    body = {
        key: data[key]
        for key in ("messages", "tools", "response_format", "max_tokens")
        if data.get(key) is not None
    }
    request = RoutingRequest(
        model=data["model"],
        body=body,
        privacy=parse_privacy(merged["privacy"]) if "privacy" in merged else None,
        min_tier=merged.get("min_tier"),
        tier_mode=TierMode(merged["tier_mode"]) if "tier_mode" in merged else None,
        max_cost_usd=merged.get("max_cost_usd"),
        sources=sources,
    )
    return request, dry_run


def request_id_from(headers: Any) -> str:
    """The caller's ``X-Request-ID`` if sensible, else a fresh one."""
    given = headers.get("X-Request-ID", "")
    return given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex
