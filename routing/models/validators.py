"""Model-layer validators: wrap the pipeline's rules so admin and API say the same.

Module-level functions and Django's deconstructible validators only, so that
migrations can serialise them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

from routing.pipeline.rules import (
    ConfigRuleError,
    parse_privacy,
    validate_model_pattern,
    validate_slug,
)


def _apply(rule: Callable[[str], object], value: str) -> None:
    try:
        rule(value)
    except ConfigRuleError as exc:
        raise ValidationError(str(exc), code="invalid") from None


def validate_slug_name(value: str) -> None:
    """Lower-case slug, 1-64 characters."""
    _apply(validate_slug, value)


def validate_pattern(value: str) -> None:
    """A glob over model names (``*`` and ``?``)."""
    _apply(validate_model_pattern, value)


def validate_privacy(value: str) -> None:
    """``unrestricted`` | ``restricted`` | ``zone:<name>``."""
    _apply(parse_privacy, value)


def validate_model_name(value: str) -> None:
    """A concrete model name: the pattern alphabet without wildcards."""
    if isinstance(value, str) and ("*" in value or "?" in value):
        raise ValidationError(
            "Model name must not contain wildcards '*' or '?'.", code="invalid"
        )
    _apply(validate_model_pattern, value)


def in_range(low: int, high: int, what: str) -> list[Callable[[int], None]]:
    """Inclusive range validators that share one message naming the field."""
    message = f"{what} must be between {low} and {high}."
    return [
        MinValueValidator(low, message=message),
        MaxValueValidator(high, message=message),
    ]


def at_least(low: int | float, what: str) -> list[Callable[[int], None]]:
    """A lower bound with a message naming the field."""
    return [MinValueValidator(low, message=f"{what} must be {low} or more.")]
