"""Forms: GET filters (a bad value is a 400) and the staff edit forms."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from routing.errors import NexusError
from routing.explorer_selectors import AuditFilters, Cursor, DecisionFilters
from routing.models import Backend, Budget, PrivacyZone
from routing.numbers import is_plain_number
from routing.pipeline.types import HardLimitAction, Outcome, TierMode
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
    sample = forms.ChoiceField(
        required=False,
        choices=[
            ("", "real and samples"),
            ("false", "real only"),
            ("true", "samples only"),
        ],
    )
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
            sample={"true": True, "false": False}.get(data.get("sample") or ""),
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


class SpendWindowForm(forms.Form):
    """The Spend page's window (``since``/``until`` days, or the last ``days``
    days) and what its chart stacks by."""

    DEFAULT_DAYS = 30
    MAX_DAYS = 366

    days = PlainIntegerField(required=False, min_value=1, max_value=MAX_DAYS)
    since = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    until = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    stack = forms.ChoiceField(
        required=False,
        choices=[("model", "model"), ("client", "client"), ("backend", "backend")],
    )

    def __init__(self, *args: Any, today: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.today = today

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        since, until, days = data.get("since"), data.get("until"), data.get("days")
        if days is not None and (since or until):
            raise ValidationError("Give either a number of days or since/until.")
        until = until or self.today
        if since is None:
            since = until - timedelta(days=(days or self.DEFAULT_DAYS) - 1)
        if since > until:
            self.add_error("since", "The window must start on or before its end.")
        elif (until - since).days + 1 > self.MAX_DAYS:
            self.add_error("since", f"A window is at most {self.MAX_DAYS} days.")
        data.update(first=since, last=until, stack=data.get("stack") or "model")
        return data


def _names(raw: str) -> list[str] | None:
    """Comma-separated names as a list (empty: None, i.e. anything)."""
    names = [part.strip() for part in raw.split(",")]
    names = [name for name in names if name]
    return names or None


class AnyNamesField(forms.MultipleChoiceField):
    """A multi-select of existing names whose values the model validates
    (its message, "unknown zone ...", is the one shown)."""

    def valid_value(self, value: Any) -> bool:
        return True


class BudgetForm(forms.Form):
    """A budget as staff edit it on the Spend page.

    Only types and list syntax are checked here; the rules (name, ranges, scope
    names and globs, thresholds) are the model's, applied by ``config_save``,
    whose messages are shown next to the field they concern.
    """

    #: ``Budget.clean`` error keys -> the field that shows them.
    ERROR_FIELDS = {
        "scope.clients": "clients",
        "scope.models": "models",
        "scope.zones": "zones",
        "scope.backends": "backends",
    }

    name = forms.CharField(max_length=64)
    monthly_limit_usd = PlainDecimalField(
        required=False,
        max_digits=14,
        decimal_places=6,
        label="Monthly limit (USD)",
        help_text="Empty: the budget only tracks spend.",
    )
    soft_limit_percent = PlainIntegerField(label="Soft limit %", initial=75)
    hard_limit_action = forms.ChoiceField(
        choices=[(a.value, a.value) for a in HardLimitAction],
        initial=HardLimitAction.BLOCK_CLOUD.value,
    )
    reset_day = PlainIntegerField(initial=1, help_text="Day of the month, 1-28.")
    clients = forms.CharField(
        required=False,
        max_length=4000,
        help_text="API key names, comma-separated; empty: any client.",
    )
    models = forms.CharField(
        required=False,
        max_length=4000,
        help_text="Model globs, comma-separated (e.g. gpt-*); empty: any model.",
    )
    zones = AnyNamesField(required=False, help_text="None selected: any zone.")
    backends = AnyNamesField(required=False, help_text="None selected: any backend.")
    alert_thresholds = forms.CharField(
        required=False,
        max_length=200,
        initial="80, 100",
        help_text="Percents of the limit, comma-separated.",
    )
    alert_webhook_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zones = PrivacyZone.objects.order_by("name").values_list("name", flat=True)
        backends = Backend.objects.order_by("name").values_list("name", flat=True)
        self.fields["zones"].choices = [(n, n) for n in zones]
        self.fields["backends"].choices = [(n, n) for n in backends]

    @classmethod
    def for_budget(cls, budget: Budget) -> BudgetForm:
        scope = budget.scope if isinstance(budget.scope, dict) else {}
        limit = budget.monthly_limit_usd
        return cls(
            initial={
                "name": budget.name,
                "monthly_limit_usd": None if limit is None else limit.normalize(),
                "soft_limit_percent": budget.soft_limit_percent,
                "hard_limit_action": budget.hard_limit_action,
                "reset_day": budget.reset_day,
                "clients": ", ".join(scope.get("clients") or []),
                "models": ", ".join(scope.get("models") or []),
                "zones": scope.get("zones") or [],
                "backends": scope.get("backends") or [],
                "alert_thresholds": ", ".join(
                    str(t) for t in budget.alert_thresholds or []
                ),
                "alert_webhook_url": budget.alert_webhook_url,
            }
        )

    def clean_alert_thresholds(self) -> list[int]:
        raw = self.cleaned_data.get("alert_thresholds") or ""
        thresholds = []
        for part in _names(raw.replace("%", "")) or []:
            if not is_plain_number(part, whole=True):
                raise ValidationError(f"{part!r} is not a whole percent; e.g. 80, 100.")
            thresholds.append(int(part))
        return thresholds

    def apply_to(self, budget: Budget) -> Budget:
        """Copy the cleaned values onto ``budget`` (not saved)."""
        data = self.cleaned_data
        budget.name = data["name"].strip()
        budget.monthly_limit_usd = data["monthly_limit_usd"]
        budget.soft_limit_percent = data["soft_limit_percent"]
        budget.hard_limit_action = data["hard_limit_action"]
        budget.reset_day = data["reset_day"]
        scope = {
            "clients": _names(data["clients"]),
            "models": _names(data["models"]),
            "zones": list(data["zones"]) or None,
            "backends": list(data["backends"]) or None,
        }
        budget.scope = {key: value for key, value in scope.items() if value}
        budget.alert_thresholds = data["alert_thresholds"]
        budget.alert_webhook_url = data["alert_webhook_url"] or ""
        return budget

    def add_model_errors(self, error: ValidationError | NexusError) -> None:
        """Put ``config_save``'s errors next to their fields (``scope.zones`` on
        the zones select); errors of no field go above the form."""
        if isinstance(error, NexusError):
            messages = error.fields or {"__all__": [error.message]}
        elif hasattr(error, "error_dict"):
            messages = error.message_dict
        else:
            messages = {"__all__": error.messages}
        for key, texts in messages.items():
            name = self.ERROR_FIELDS.get(key, key)
            self.add_error(name if name in self.fields else None, texts)


#: The window a new backtest proposes: the last this many days.
BACKTEST_DEFAULT_DAYS = 7


class BacktestForm(forms.Form):
    """A backtest to start: an open draft (empty: today's configuration), the
    window ``[since, until)`` in UTC and the filters. The service checks the
    rest (``until`` after ``since``, the draft open) with the API's messages."""

    draft = PlainIntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    since = forms.DateTimeField(
        input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
        ),
        help_text="UTC",
    )
    until = forms.DateTimeField(
        input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
        ),
        help_text="UTC; decisions before this time",
    )
    model = forms.CharField(
        required=False, max_length=200, help_text="requested or resolved"
    )
    client = forms.CharField(required=False, max_length=160)
    outcome = forms.ChoiceField(
        required=False, choices=[("", "any outcome")] + [(o, o) for o in Outcome]
    )

    @classmethod
    def initial_for(cls, *, now: datetime, draft_id: int | None) -> dict[str, Any]:
        """The last ``BACKTEST_DEFAULT_DAYS`` days up to the next minute."""
        until = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return {
            "draft": draft_id,
            "since": until - timedelta(days=BACKTEST_DEFAULT_DAYS),
            "until": until,
        }

    def request(self) -> dict[str, Any]:
        """The service's keyword arguments (times in UTC, empty filters left out)."""
        data = self.cleaned_data
        return {
            "draft_id": data.get("draft"),
            "since": as_utc(data["since"]),
            "until": as_utc(data["until"]),
            "filters": {
                key: data[key].strip()
                for key in ("model", "client", "outcome")
                if (data.get(key) or "").strip()
            },
        }


class BacktestChangeFilterForm(forms.Form):
    """The changed decisions' filters (as the API's) and page cursor."""

    outcome_change = forms.ChoiceField(required=False, choices=[])
    backend = forms.CharField(required=False, max_length=64)
    cursor = forms.CharField(required=False, max_length=80)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        outcomes = [o.value for o in Outcome]
        self.fields["outcome_change"].choices = [("", "any change")] + [
            (f"{a}->{b}", f"{a} → {b}") for a in outcomes for b in outcomes
        ]

    def clean_cursor(self) -> tuple[datetime, int] | None:
        raw = (self.cleaned_data.get("cursor") or "").replace(" ", "+")
        if not raw:
            return None
        stamp, _, ident = raw.rpartition("_")
        when = parse_utc(stamp)
        if when is None or not ident.isdigit():
            raise ValidationError("Not a page cursor.")
        return (when, int(ident))


class RerunForm(forms.Form):
    """The decision page's re-run: today's configuration, or an open draft."""

    draft = PlainIntegerField(required=False, min_value=1)
