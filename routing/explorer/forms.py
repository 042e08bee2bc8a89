"""Forms: GET filters (a bad value is a 400) and the staff edit forms."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from routing.explorer_selectors import AuditFilters, Cursor, DecisionFilters
from routing.models import Backend, PrivacyZone
from routing.numbers import is_plain_number
from routing.pipeline.types import Outcome, TierMode
from routing.timestamps import as_utc, parse_utc

slug = RegexValidator(r"^[A-Za-z0-9_.:-]+$", "Letters, digits, _ . : - only.")
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


class PlainIntegerField(forms.IntegerField):
    """A whole number in plain notation: no ``1_0``, ``1e3`` or ``١``."""

    def to_python(self, value: Any) -> int | None:
        if isinstance(value, str):
            value = value.strip()
            if value and not is_plain_number(value, whole=True):
                raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class PlainDecimalField(forms.DecimalField):
    """A decimal number in plain notation: no ``1_0``, ``1e3``, ``inf`` or ``nan``."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value and not is_plain_number(value):
                raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


class DecisionFilterForm(forms.Form):
    """Filters of the decisions page, its live feed and its pages."""

    outcome = forms.ChoiceField(
        required=False, choices=[("", "any outcome")] + [(o, o) for o in Outcome]
    )
    model = forms.CharField(required=False, max_length=200)
    backend = forms.CharField(required=False, max_length=64, validators=[slug])
    excluded_by = forms.CharField(required=False, max_length=64, validators=[slug])
    since = forms.DateTimeField(required=False, input_formats=DATETIME_FORMATS)
    until = forms.DateTimeField(required=False, input_formats=DATETIME_FORMATS)
    request_id = forms.CharField(required=False, max_length=128)
    config_version = PlainIntegerField(required=False, min_value=0)
    cursor = forms.CharField(required=False, max_length=80)

    def clean_cursor(self) -> Cursor | None:
        raw = self.cleaned_data.get("cursor") or ""
        if not raw:
            return None
        # A "+" of the UTC offset may arrive as a space from a hand-made URL.
        stamp, _, ident = raw.replace(" ", "+").rpartition("_")
        when = parse_utc(stamp)
        try:
            decision_id = uuid.UUID(ident)
        except ValueError:
            decision_id = None
        if when is None or decision_id is None:
            raise ValidationError("Not a page cursor.")
        return (when, decision_id)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            raise ValidationError("The start of the time range must be before its end.")
        return data

    def filters(self) -> DecisionFilters:
        data = self.cleaned_data
        return DecisionFilters(
            outcome=data.get("outcome") or "",
            model=(data.get("model") or "").strip(),
            backend=data.get("backend") or "",
            excluded_by=data.get("excluded_by") or "",
            since=_utc(data.get("since")),
            until=_utc(data.get("until")),
            request_id=(data.get("request_id") or "").strip(),
            config_version=data.get("config_version"),
        )


class FeedForm(DecisionFilterForm):
    """The live feed: the same filters plus the newest timestamp already shown."""

    after = forms.CharField(max_length=64)

    def clean_after(self) -> datetime:
        when = parse_utc(self.cleaned_data["after"])
        if when is None:
            raise ValidationError("Not an ISO 8601 timestamp.")
        return when


def cursor_param(cursor: Cursor | None) -> str:
    if cursor is None:
        return ""
    return f"{cursor[0].isoformat()}_{cursor[1]}"


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    object_type = forms.CharField(required=False, max_length=64, validators=[slug])
    search = forms.CharField(required=False, max_length=300)
    version = PlainIntegerField(required=False, min_value=0)
    before = PlainIntegerField(required=False, min_value=1)

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(
            actor=data.get("actor") or "",
            object_type=data.get("object_type") or "",
            search=(data.get("search") or "").strip(),
            version=data.get("version"),
        )


class SimulateForm(forms.Form):
    """A described request: what the analyzer would derive, plus constraints."""

    model = forms.CharField(max_length=200)
    input_tokens = PlainIntegerField(
        min_value=0, max_value=2_000_000, initial=500, label="Input tokens"
    )
    output_tokens = PlainIntegerField(
        min_value=1, max_value=1_000_000, initial=256, label="Max output tokens"
    )
    vision = forms.BooleanField(required=False)
    tools = forms.BooleanField(required=False)
    json_mode = forms.BooleanField(required=False, label="JSON mode")
    privacy = forms.CharField(
        required=False,
        max_length=80,
        help_text="unrestricted, restricted or zone:<name>",
    )
    min_tier = PlainIntegerField(
        required=False, min_value=1, max_value=5, label="Minimum tier"
    )
    tier_mode = forms.ChoiceField(
        required=False, choices=[("", "default")] + [(m, m) for m in TierMode]
    )
    max_cost_usd = PlainDecimalField(
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=6,
        label="Cost cap (USD)",
    )

    def clean_privacy(self) -> str:
        from routing.pipeline.rules import ConfigRuleError, parse_privacy

        value = (self.cleaned_data.get("privacy") or "").strip()
        if not value:
            return ""
        try:
            return str(parse_privacy(value))
        except (ConfigRuleError, ValueError) as exc:
            raise ValidationError(str(exc)) from None

    def clean_max_cost_usd(self) -> float | None:
        value = self.cleaned_data.get("max_cost_usd")
        if value is None:
            return None
        if value <= 0:
            raise ValidationError("A cost cap must be above zero (or empty).")
        return float(value)


class BackendEditForm(forms.Form):
    """Zone, tier, priority and enabled as typed values.

    Only types are checked here; ranges are the model's rules, applied by
    ``config_save`` (full_clean), whose messages are shown next to each field.
    """

    privacy_zone = forms.ModelChoiceField(
        queryset=PrivacyZone.objects.order_by("name"),
        required=False,
        to_field_name="name",
        empty_label="(no zone: not private)",
    )
    capability_tier = PlainIntegerField()
    priority = PlainIntegerField()
    enabled = forms.BooleanField(required=False)

    @classmethod
    def for_backend(cls, backend: Backend) -> BackendEditForm:
        return cls(
            initial={
                "privacy_zone": backend.privacy_zone.name
                if backend.privacy_zone
                else None,
                "capability_tier": backend.capability_tier,
                "priority": backend.priority,
                "enabled": backend.enabled,
            }
        )

    def add_model_errors(self, error: ValidationError) -> None:
        """Attach ``config_save``'s ValidationError to the matching fields."""
        if hasattr(error, "error_dict"):
            for name, messages in error.message_dict.items():
                self.add_error(name if name in self.fields else None, messages)
        else:
            self.add_error(None, error.messages)
