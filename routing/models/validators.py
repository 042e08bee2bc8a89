"""Model-layer validators: wrap the pipeline's rules so admin and API say the same.

Module-level functions and Django's deconstructible validators only, so that
migrations can serialise them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

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


@deconstructible
class Bounds:
    """An inclusive numeric range whose message names the field.

    Not a subclass of Django's Min/MaxValueValidator on purpose: DRF replaces
    those with its own wording, and the API must say what the admin says.
    """

    def __init__(self, what: str, low: float | None = None, high: float | None = None):
        self.what, self.low, self.high = what, low, high

    def __call__(self, value: float | None) -> None:
        if value is None:
            return
        too_low = self.low is not None and value < self.low
        too_high = self.high is not None and value > self.high
        if too_low or too_high:
            raise ValidationError(self.message(), code="out_of_range")

    def message(self) -> str:
        if self.high is None:
            return f"{self.what} must be {self.low} or more."
        return f"{self.what} must be between {self.low} and {self.high}."

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bounds) and (self.what, self.low, self.high) == (
            other.what,
            other.low,
            other.high,
        )

    def __hash__(self) -> int:
        return hash((self.what, self.low, self.high))


def in_range(low: int, high: int, what: str) -> list[Bounds]:
    """Inclusive range validator with one message naming the field."""
    return [Bounds(what, low, high)]


def at_least(low: int | float, what: str) -> list[Bounds]:
    """A lower bound with a message naming the field."""
    return [Bounds(what, low)]


def validate_env_var_name(value: str) -> None:
    """An environment variable name: upper-case letters, digits and ``_``, not
    starting with a digit (e.g. ``OPENAI_API_KEY``), at most 128 characters."""
    import re

    if not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,127}", value):
        raise ValidationError(
            f"{value!r} is not an environment variable name: use upper-case "
            "letters, digits and '_', not starting with a digit "
            "(e.g. OPENAI_API_KEY).",
            code="invalid",
        )
