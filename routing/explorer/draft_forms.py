"""Forms of the Drafts page: one change to one configuration object.

Backends and budgets reuse the live edit forms (``BackendEditForm``,
``BudgetForm``); zones, aliases, fallback chains and policies have forms with
the configuration API's fields. Forms check types only: the rules are the live
edit's, applied by the drafts service, whose errors (``changes.<i>.<field>``)
come back next to the matching field.

A create records every field; an update records only the fields changed from
the object as the draft leaves it (the form's ``initial``), so it "changes only
the given fields" like the API's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Model

from routing.explorer.forms import (
    AnyNamesField,
    BackendEditForm,
    BudgetForm,
    PlainDecimalField,
    PlainIntegerField,
    _names,
)
from routing.models import (
    Backend,
    BackendModel,
    Budget,
    FallbackChain,
    TrafficPolicy,
)
from routing.pipeline.types import BackendKind


def _json(value: Any) -> Any:
    """A JSON-safe value: decimals as plain strings (the API takes them)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return value


class AnyChoiceField(forms.ChoiceField):
    """A select of known names whose value the live edit validates (a zone
    the draft deletes or creates is the service's to judge)."""

    def valid_value(self, value: Any) -> bool:
        return True


@dataclass(frozen=True)
class DraftState:
    """What a change form offers, as the draft leaves the configuration: the
    zones and backends to choose from."""

    zones: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)


class DraftChangeForm(forms.Form):
    """The draft side of a change form: its values as the API's ``fields``, and
    the service's errors placed at the fields."""

    RESOURCE: ClassVar[str]
    #: The field that addresses the object (``name``; ``model`` for fallbacks).
    LOOKUP: ClassVar[str] = "name"
    #: Form fields whose value is written as another API field.
    API_FIELD: ClassVar[dict[str, str]] = {}

    def __init__(self, *args: Any, state: DraftState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = state

    @classmethod
    def initial_for(cls, instance: Model) -> dict[str, Any]:
        """The form's values for ``instance``: each field's attribute of the
        same name (forms whose fields read otherwise say how)."""
        return {name: getattr(instance, name) for name in cls.base_fields}

    def api_values(self) -> dict[str, Any]:
        """Every API field from the cleaned data (JSON-safe)."""
        return {name: _json(value) for name, value in self.cleaned_data.items()}

    def change_fields(self, action: str) -> dict[str, Any]:
        """The change's ``fields``: all for a create (without the name, which the
        change carries), only the changed ones for an update."""
        values = self.api_values()
        if action == "create":
            return {k: v for k, v in values.items() if k != self.LOOKUP}
        changed = {self.API_FIELD.get(name, name) for name in self.changed_data}
        return {k: v for k, v in values.items() if k in changed}

    def _error_field(self, key: str) -> str | None:
        """The form field that shows an API error key (``scope.zones`` ->
        ``zones``, ``models.0.name`` -> ``models``); None: above the form."""
        mapped = getattr(self, "ERROR_FIELDS", {}).get(key, key)
        for candidate in (mapped, mapped.split(".", 1)[0]):
            if candidate in self.fields:
                return candidate
            for form_field, api_field in self.API_FIELD.items():
                if api_field == candidate and form_field in self.fields:
                    return form_field
        return None

    def add_change_errors(self, errors: dict[str, list[str]]) -> None:
        """Place one change's errors (keys without ``changes.<i>.``)."""
        for key, messages in errors.items():
            target = self._error_field(key)
            if target is None and key not in ("", "__all__", "non_field_errors"):
                messages = [f"{key}: {m}" for m in messages]
            self.add_error(target, messages)


class ZoneChangeForm(DraftChangeForm):
    RESOURCE = "zones"

    name = forms.CharField(max_length=64)
    private = forms.BooleanField(required=False)
    description = forms.CharField(max_length=200, required=False)


class AliasChangeForm(DraftChangeForm):
    RESOURCE = "aliases"

    name = forms.CharField(max_length=200)
    target = forms.CharField(max_length=200, help_text="A model or another alias.")


class FallbackChangeForm(DraftChangeForm):
    RESOURCE = "fallbacks"
    LOOKUP = "model"

    model = forms.CharField(max_length=200)
    fallbacks = forms.CharField(
        max_length=1200,
        help_text="Models tried in order, comma-separated (1-5).",
    )

    @classmethod
    def initial_for(cls, instance: Model) -> dict[str, Any]:
        assert isinstance(instance, FallbackChain)
        return {"model": instance.model, "fallbacks": ", ".join(instance.fallbacks)}

    def clean_fallbacks(self) -> list[str]:
        return _names(self.cleaned_data.get("fallbacks") or "") or []

    @property
    def changed_data(self) -> list[str]:
        """``fallbacks`` compared as lists (spacing after commas is no change)."""
        changed = [n for n in super().changed_data if n != "fallbacks"]
        before = _names(str(self.initial.get("fallbacks", ""))) or []
        if (
            "fallbacks" in self.cleaned_data
            and self.cleaned_data["fallbacks"] != before
        ):
            changed.append("fallbacks")
        return changed


class PolicyChangeForm(DraftChangeForm):
    RESOURCE = "policies"

    name = forms.CharField(max_length=64)
    model_pattern = forms.CharField(
        max_length=200, help_text="A model glob, e.g. gpt-*."
    )
    order = PlainIntegerField(initial=100, help_text="Lower is tried first.")
    privacy = forms.CharField(
        max_length=80,
        initial="unrestricted",
        help_text="unrestricted, restricted, or zone:<zone name>",
    )
    min_tier = PlainIntegerField(required=False, label="Minimum tier")
    fallback_allowed = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Off: no flexible tier downgrade and no fallback models.",
    )
    max_cost_per_request_usd = PlainDecimalField(
        required=False,
        max_digits=12,
        decimal_places=6,
        label="Max cost per request (USD)",
    )
    description = forms.CharField(max_length=200, required=False)

    @classmethod
    def initial_for(cls, instance: Model) -> dict[str, Any]:
        assert isinstance(instance, TrafficPolicy)
        cap = instance.max_cost_per_request_usd
        return {
            "name": instance.name,
            "model_pattern": instance.model_pattern,
            "order": instance.order,
            "privacy": instance.privacy,
            "min_tier": instance.min_tier,
            "fallback_allowed": instance.fallback_allowed,
            "max_cost_per_request_usd": None if cap is None else cap.normalize(),
            "description": instance.description,
        }


def _offers(backend: Backend) -> str:
    """A backend's served models as the API's JSON list."""
    offers: Iterable[BackendModel] = backend.models.order_by("name")
    return json.dumps(
        [
            {name: _json(getattr(offer, name)) for name in BackendModel.AUDITED_FIELDS}
            for offer in offers
        ],
        indent=1,
    )


class BackendChangeForm(DraftChangeForm, BackendEditForm):
    """The live inline edit's fields (zone, tier, priority, enabled) and the rest
    of the API's configuration fields; ``models`` as the API's JSON list."""

    RESOURCE = "backends"

    name = forms.CharField(max_length=64)
    kind = forms.ChoiceField(choices=[(k.value, k.value) for k in BackendKind])
    base_url = forms.CharField(max_length=300, label="Base URL")
    privacy_zone = AnyChoiceField(required=False)
    capability_tier = PlainIntegerField(initial=1)
    priority = PlainIntegerField(initial=50, help_text="0-100; lower is preferred.")
    enabled = forms.BooleanField(required=False, initial=True)
    max_concurrency = PlainIntegerField(initial=4)
    api_key_env = forms.CharField(
        max_length=128,
        required=False,
        label="API key variable",
        help_text="The environment variable holding the upstream key, never the key.",
    )
    models = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        initial="[]",
        help_text='Served models as the API\'s JSON list, e.g. [{"name": "gpt-4o", '
        '"input_cost_per_1k": "0.0025", "output_cost_per_1k": "0.01"}].',
    )

    # The configuration's own field order (those an edit is audited for).
    field_order = [*Backend.AUDITED_FIELDS, "models"]

    def __init__(self, *args: Any, state: DraftState, **kwargs: Any) -> None:
        super().__init__(*args, state=state, **kwargs)
        self.fields["privacy_zone"].choices = [("", "(no zone: not private)")] + [
            (name, name) for name in state.zones
        ]

    @classmethod
    def initial_for(cls, instance: Model) -> dict[str, Any]:
        assert isinstance(instance, Backend)
        return {
            "name": instance.name,
            "kind": instance.kind,
            "base_url": instance.base_url,
            "privacy_zone": instance.privacy_zone.name if instance.privacy_zone else "",
            "capability_tier": instance.capability_tier,
            "priority": instance.priority,
            "enabled": instance.enabled,
            "max_concurrency": instance.max_concurrency,
            "api_key_env": instance.api_key_env,
            "models": _offers(instance),
        }

    def clean_models(self) -> list[Any]:
        raw = (self.cleaned_data.get("models") or "").strip()
        if not raw:
            return []
        try:
            offers = json.loads(raw)
        except ValueError as exc:
            raise ValidationError(f"Not JSON: {exc}.") from None
        if not isinstance(offers, list):
            raise ValidationError("Give a JSON list of models ([] for none).")
        return offers

    @property
    def changed_data(self) -> list[str]:
        """``models`` compared as JSON (layout is no change)."""
        changed = [n for n in super().changed_data if n != "models"]
        try:
            before = json.loads(str(self.initial.get("models") or "[]"))
        except ValueError:  # pragma: no cover - initial is ours
            before = None
        if "models" in self.cleaned_data and self.cleaned_data["models"] != before:
            changed.append("models")
        return changed

    def api_values(self) -> dict[str, Any]:
        values = super().api_values()
        values["privacy_zone"] = values.get("privacy_zone") or None
        return values


class BudgetChangeForm(DraftChangeForm, BudgetForm):
    """The Spend page's budget form; its zone and backend choices are the ones
    the draft leaves."""

    RESOURCE = "budgets"
    API_FIELD: ClassVar[dict[str, str]] = {
        "clients": "scope",
        "models": "scope",
        "zones": "scope",
        "backends": "scope",
    }

    zones = AnyNamesField(required=False, help_text="None selected: any zone.")
    backends = AnyNamesField(required=False, help_text="None selected: any backend.")

    def __init__(self, *args: Any, state: DraftState, **kwargs: Any) -> None:
        super().__init__(*args, state=state, **kwargs)
        self.fields["zones"].choices = [(n, n) for n in state.zones]
        self.fields["backends"].choices = [(n, n) for n in state.backends]

    @classmethod
    def initial_for(cls, instance: Model) -> dict[str, Any]:
        assert isinstance(instance, Budget)
        return dict(BudgetForm.for_budget(instance).initial)

    def api_values(self) -> dict[str, Any]:
        budget = self.apply_to(Budget())
        return {
            "name": budget.name,
            "monthly_limit_usd": _json(budget.monthly_limit_usd),
            "soft_limit_percent": budget.soft_limit_percent,
            "hard_limit_action": budget.hard_limit_action,
            "reset_day": budget.reset_day,
            "scope": budget.scope,
            "alert_thresholds": budget.alert_thresholds,
            "alert_webhook_url": budget.alert_webhook_url,
        }


CHANGE_FORMS: dict[str, type[DraftChangeForm]] = {
    form.RESOURCE: form
    for form in (
        BackendChangeForm,
        PolicyChangeForm,
        AliasChangeForm,
        FallbackChangeForm,
        BudgetChangeForm,
        ZoneChangeForm,
    )
}
#: What the page calls each resource, in the order it offers them.
RESOURCE_LABELS: dict[str, str] = {
    "backends": "Backend",
    "policies": "Policy",
    "aliases": "Alias",
    "fallbacks": "Fallback chain",
    "budgets": "Budget",
    "zones": "Zone",
}


class NewDraftForm(forms.Form):
    """A new draft: a name and what it is for (changes are added on its page)."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class ChangeTargetForm(forms.Form):
    """Which change form to open: ``action`` on the object ``name`` (none for a
    create)."""

    action = forms.ChoiceField(
        choices=[("create", "create"), ("update", "update"), ("delete", "delete")]
    )
    name = forms.CharField(max_length=200, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["name"] = (data.get("name") or "").strip()
        if data.get("action") in ("update", "delete") and not data["name"]:
            self.add_error("name", "Choose the object to change.")
        return data
