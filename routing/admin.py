"""Django admin for all of Nexus. Configuration saves go through the audited services."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Field, Model, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.forms import Field as FormField
from django.http import HttpRequest
from django.utils.html import format_html

from routing.decision_storage import EMPTY
from routing.explorer.numbers import money
from routing.models import (
    Alias,
    ApiKey,
    AuditEntry,
    Backend,
    BackendModel,
    Backtest,
    Budget,
    BudgetAlert,
    Draft,
    FallbackChain,
    LedgerEntry,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
    UsageReport,
)
from routing.models.validators import Bounds
from routing.services.api_keys import api_key_issue
from routing.services.backends import backend_api_key_set, backend_save
from routing.services.config import config_built_in, config_delete, config_save
from routing.services.decision_templates import decision_view

admin.site.site_header = "Nexus control plane"
admin.site.site_title = "Nexus"
admin.site.index_title = "Configuration and history"


def money_column(field: str, label: str) -> Callable[[Any], str]:
    """A list column showing the dollar amount ``field`` the way the explorer
    does (``$0.0026``, ``$1,234.50``), still sortable by the field."""

    @admin.display(description=label, ordering=field)
    def column(obj: Any) -> str:
        return money(getattr(obj, field))

    return column


def _actor(request: HttpRequest) -> str:
    return request.user.get_username() or "admin"


class BoundedInputs:
    """Number inputs carry the model's bounds (``min``/``max``), so the form
    offers what the model accepts (e.g. a capability tier of 1-5)."""

    def formfield_for_dbfield(
        self, db_field: Field[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> FormField | None:
        formfield: FormField | None = super().formfield_for_dbfield(  # type: ignore[misc]
            db_field, request, **kwargs
        )
        if formfield is None:
            return None
        for bounds in db_field.validators:
            if isinstance(bounds, Bounds):
                if bounds.low is not None:
                    formfield.widget.attrs["min"] = bounds.low
                if bounds.high is not None:
                    formfield.widget.attrs["max"] = bounds.high
        return formfield


class AuditedAdmin(BoundedInputs, admin.ModelAdmin):
    """Every save and delete is audited per field and bumps the config version."""

    def save_model(
        self, request: HttpRequest, obj: Model, form: ModelForm, change: bool
    ) -> None:
        config_save(instance=obj, actor=_actor(request))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Built-in rows (zones local/cloud, budget global) are never deleted."""
        if obj is not None and config_built_in(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """A built-in row keeps its name; its other fields stay editable."""
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and config_built_in(obj):
            return (*fields, "name")
        return fields

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        config_delete(instance=obj, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            config_delete(instance=obj, actor=_actor(request))

    def save_formset(
        self,
        request: HttpRequest,
        form: ModelForm,
        formset: BaseInlineFormSet,
        change: bool,
    ) -> None:
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            config_delete(instance=obj, actor=_actor(request))
        for obj in instances:
            config_save(instance=obj, actor=_actor(request))
        formset.save_m2m()


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by the system only: view, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PrivacyZone)
class PrivacyZoneAdmin(AuditedAdmin):
    list_display = ("name", "private", "description")


class BackendModelInline(BoundedInputs, admin.TabularInline):
    model = BackendModel
    extra = 0
    fields = BackendModel.AUDITED_FIELDS


@admin.register(Backend)
class BackendAdmin(AuditedAdmin):
    list_display = (
        "name",
        "kind",
        "privacy_zone",
        "capability_tier",
        "priority",
        "enabled",
        "health",
    )
    list_filter = ("kind", "privacy_zone", "capability_tier", "enabled", "health")
    list_editable = ("privacy_zone", "capability_tier", "priority", "enabled")
    search_fields = ("name", "base_url", "models__name")
    inlines = [BackendModelInline]
    probed_fields = (
        "health",
        "loading_eta_ms",
        "pending_requests",
        "latency_ema_ms",
        "error_rate",
        "consecutive_failures",
        "last_probe_at",
    )
    readonly_fields = (*probed_fields, "api_key_set")
    fieldsets = (
        (None, {"fields": ("name", "kind", "base_url", "enabled")}),
        (
            "Upstream key",
            {
                "fields": ("api_key_env", "api_key_set"),
                "description": "The name of an environment variable of the "
                "server that holds the key sent upstream; the key itself is "
                "never stored or shown.",
            },
        ),
        (
            "Routing",
            {
                "fields": (
                    "privacy_zone",
                    "capability_tier",
                    "priority",
                    "max_concurrency",
                )
            },
        ),
        ("Probed state", {"fields": probed_fields}),
    )

    @admin.display(description="key variable set on this server", boolean=True)
    def api_key_set(self, obj: Backend) -> bool:
        return backend_api_key_set(backend=obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """``routing.operate_backend`` (operators) may change the operator fields."""
        return super().has_change_permission(request, obj) or request.user.has_perm(
            "routing.operate_backend"
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Without ``change_backend`` only the operator fields stay editable."""
        fields = tuple(super().get_readonly_fields(request, obj))
        if super().has_change_permission(request, obj):
            return fields
        editable = set(Backend.OPERATOR_FIELDS)
        every = [f.name for f in Backend._meta.concrete_fields if not f.primary_key]
        return (*fields, *(f for f in every if f not in editable and f not in fields))

    def save_model(
        self, request: HttpRequest, obj: Backend, form: ModelForm, change: bool
    ) -> None:
        """Through ``backend_save``, like the API and the explorer (probe on enable)."""
        backend_save(backend=obj, models=None, actor=_actor(request))


@admin.register(Alias)
class AliasAdmin(AuditedAdmin):
    list_display = ("name", "target")
    search_fields = ("name", "target")


@admin.register(FallbackChain)
class FallbackChainAdmin(AuditedAdmin):
    list_display = ("model", "fallbacks")


@admin.register(TrafficPolicy)
class TrafficPolicyAdmin(AuditedAdmin):
    list_display = (
        "name",
        "order",
        "model_pattern",
        "privacy",
        "min_tier",
        "fallback_allowed",
        money_column("max_cost_per_request_usd", "max cost per request"),
    )


class BudgetAdminForm(ModelForm):
    """``Budget.clean`` keys scope errors ``scope.<field>``; the admin has one
    ``scope`` field, so they are shown there, prefixed with the scope field."""

    class Meta:
        model = Budget
        fields = Budget.AUDITED_FIELDS

    def _update_errors(self, errors: ValidationError) -> None:
        if hasattr(errors, "error_dict"):
            remapped: dict[str, list[str]] = {}
            for key, messages in errors.message_dict.items():
                target, _, part = key.partition(".")
                if part and target == "scope":
                    messages = [f"{part}: {message}" for message in messages]
                remapped.setdefault(target, []).extend(messages)
            errors = ValidationError(remapped)
        super()._update_errors(errors)  # type: ignore[misc]


@admin.register(Budget)
class BudgetAdmin(AuditedAdmin):
    form = BudgetAdminForm
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "monthly_limit_usd",
                    "soft_limit_percent",
                    "hard_limit_action",
                    "reset_day",
                )
            },
        ),
        ("What it governs", {"fields": ("scope",)}),
        ("Alerts", {"fields": ("alert_thresholds", "alert_webhook_url")}),
        (
            "This period",
            {
                "fields": (
                    "period_start",
                    "period_end",
                    "spent_usd",
                    "reserved_usd",
                    "status",
                )
            },
        ),
    )
    list_display = (
        "name",
        money_column("monthly_limit_usd", "monthly limit"),
        "soft_limit_percent",
        "hard_limit_action",
        "reset_day",
        money_column("spent_usd", "spent"),
        money_column("reserved_usd", "reserved"),
        "status",
    )
    readonly_fields = (
        "period_start",
        "period_end",
        "spent_usd",
        "reserved_usd",
        "status",
    )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are shown once when created; only their hash is kept."""

    list_display = (
        "name",
        "hint",
        "is_admin",
        "is_active",
        "created_at",
        "last_used_at",
    )
    readonly_fields = ("hint", "created_at", "last_used_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["name", "is_admin"]
        return ["name", "hint", "is_admin", "is_active", "created_at", "last_used_at"]

    def save_model(
        self, request: HttpRequest, obj: ApiKey, form: ModelForm, change: bool
    ) -> None:
        if change:
            obj.save()
            return
        key, raw = api_key_issue(name=obj.name, is_admin=obj.is_admin)
        obj.pk, obj.key_hash, obj.hint = key.pk, key.key_hash, key.hint
        messages.warning(request, f"API key for {key.name} (shown only now): {raw}")


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_name",
        "field",
        "old_value",
        "new_value",
        "config_version",
        "draft",
    )
    list_filter = ("object_type", "action", "actor")
    search_fields = ("object_name", "field")


@admin.register(Draft)
class DraftAdmin(ReadOnlyAdmin):
    """Drafts are written through the API (validated, applied as one version)."""

    list_display = (
        "id",
        "name",
        "status",
        "base_version",
        "applied_version",
        "created_by",
        "created_at",
        "applied_by",
    )
    list_filter = ("status",)
    search_fields = ("name", "description")


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "outcome",
        "requested_model",
        "model",
        "backend_name",
        money_column("estimated_cost_usd", "estimated cost"),
        "client",
    )
    list_filter = ("outcome",)
    search_fields = ("request_id", "requested_model", "model", "backend_name")
    date_hierarchy = "created_at"
    # The JSON columns hold the compact stored form: show the full view instead.
    exclude = tuple(EMPTY)
    readonly_fields = ("recorded_json",)

    @admin.display(description="requirements, constraints, annotations, trace…")
    def recorded_json(self, obj: RoutingDecision) -> str:
        return format_html("<pre>{}</pre>", json.dumps(decision_view(obj), indent=2))


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "budget",
        "kind",
        money_column("amount_usd", "amount"),
        "decision_id",
        "note",
    )
    list_filter = ("kind", "budget")


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "budget",
        "threshold_percent",
        "period_start",
        "status",
        "http_status",
        "attempts",
        money_column("spent_usd", "spent"),
        money_column("limit_usd", "limit"),
        "delivered_at",
    )
    list_filter = ("status", "budget")
    list_select_related = ("budget",)


@admin.register(UsageReport)
class UsageReportAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "decision_id",
        "input_tokens",
        "output_tokens",
        money_column("cost_usd", "cost"),
    )


@admin.register(Backtest)
class BacktestAdmin(ReadOnlyAdmin):
    """Backtests are requested through the API or ``manage.py backtest``."""

    list_display = (
        "id",
        "draft",
        "status",
        "since",
        "until",
        "progress_done",
        "progress_total",
        "created_by",
        "created_at",
    )
    list_filter = ("status",)
