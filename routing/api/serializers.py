"""Serializers for configuration resources and recorded decisions.

Writes go through the audited services; model-layer validation errors come back
as DRF validation errors, so the API says exactly what the admin says.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from routing.api.fields import (
    PlainFloatField,
    PlainIntegerField,
    PlainNumbersModelSerializer,
)
from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Budget,
    BudgetAlert,
    FallbackChain,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
    UsageReport,
)
from routing.models.validators import validate_env_var_name
from routing.pipeline.types import Health
from routing.selectors import BudgetForecast, budget_forecasts
from routing.services.backends import backend_api_key_set, backend_save
from routing.services.config import config_save
from routing.services.decision_templates import (
    decision_template_ids,
    decision_view,
    template_texts,
)
from routing.services.health import (
    OBSERVED_FIELDS,
    backend_observed_set,
    observed_value_error,
)
from routing.services.passive_health import in_flight_counts


def _save(instance: models.Model, actor: str) -> None:
    try:
        config_save(instance=instance, actor=actor)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict) from None


class AuditedModelSerializer(PlainNumbersModelSerializer):
    """Creates and updates through ``config_save`` with the request's actor."""

    def _actor(self) -> str:
        """Who the audit log names: the context's ``actor`` (a draft's apply),
        else the request's user."""
        actor = self.context.get("actor")
        if actor:
            return str(actor)
        request = self.context.get("request")
        return request.user.get_username() if request else "api"

    def create(self, validated_data: dict[str, Any]) -> Any:
        instance = self.Meta.model(**validated_data)
        _save(instance, self._actor())
        return instance

    def update(self, instance: Any, validated_data: dict[str, Any]) -> Any:
        for field, value in validated_data.items():
            setattr(instance, field, value)
        _save(instance, self._actor())
        return instance


class PrivacyZoneSerializer(AuditedModelSerializer):
    class Meta:
        model = PrivacyZone
        fields = ["name", "private", "description"]


class BackendModelSerializer(PlainNumbersModelSerializer):
    class Meta:
        model = BackendModel
        fields = list(BackendModel.AUDITED_FIELDS)


ENV_VAR_NAME_MESSAGE = (
    "Give the name of the environment variable that holds the upstream key, "
    "never the key itself: upper-case letters, digits and '_', not starting "
    "with a digit, at most 128 characters (e.g. OPENAI_API_KEY); empty for a "
    "backend without a key."
)


def _env_var_name(value: str) -> None:
    """The model's rule, with a message that does not repeat the value (it may be
    a key pasted by mistake)."""
    if not value:
        return
    try:
        validate_env_var_name(value)
    except DjangoValidationError:
        raise serializers.ValidationError(ENV_VAR_NAME_MESSAGE) from None


def _observed_rule(field: str) -> Callable[[Any], None]:
    """The service's rule for an observed field, so the API says what it says."""

    def check(value: Any) -> None:
        message = observed_value_error(field, value)
        if message is not None:
            raise serializers.ValidationError(message)

    return check


OBSERVED_NOTE = (
    "Observed state: written by probes and traffic, or with an admin API key "
    "(not audited, no config version)."
)


class ObservedFloatField(PlainFloatField):
    """A number that is not a boolean (``true`` is no error rate)."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return float(super().to_internal_value(data))


class BackendSerializer(AuditedModelSerializer):
    """A backend, its served models, and its observed state.

    ``api_key_env`` names an environment variable; ``api_key_set`` says whether
    it is set here. Observed fields may be written with an admin key only (the
    view checks who) and are stored like a probe result, not audited.
    """

    privacy_zone = serializers.SlugRelatedField(
        slug_field="name",
        queryset=PrivacyZone.objects.all(),
        allow_null=True,
        required=False,
    )
    api_key_env = serializers.CharField(
        max_length=128,
        allow_blank=True,
        required=False,
        validators=[_env_var_name],
        help_text=Backend._meta.get_field("api_key_env").help_text,
    )
    api_key_set = serializers.SerializerMethodField(
        help_text="Whether the variable named by api_key_env is set (and not "
        "empty) in the server's environment."
    )
    health = serializers.ChoiceField(
        choices=[h.value for h in Health],
        required=False,
        error_messages={"invalid_choice": observed_value_error("health", None)},
        help_text=f"{OBSERVED_NOTE} ``unknown`` = never probed (routable).",
    )
    loading_eta_ms = PlainIntegerField(
        required=False,
        allow_null=True,
        validators=[_observed_rule("loading_eta_ms")],
        help_text=f"{OBSERVED_NOTE} Milliseconds until a loading backend serves, "
        "0 or more; null when unknown.",
    )
    pending_requests = PlainIntegerField(
        required=False,
        validators=[_observed_rule("pending_requests")],
        help_text=f"{OBSERVED_NOTE} Requests in flight to it, 0 or more.",
    )
    latency_ema_ms = ObservedFloatField(
        required=False,
        allow_null=True,
        validators=[_observed_rule("latency_ema_ms")],
        help_text=f"{OBSERVED_NOTE} Moving average latency in ms, 0 or more; "
        "null when unknown.",
    )
    error_rate = ObservedFloatField(
        required=False,
        validators=[_observed_rule("error_rate")],
        help_text=f"{OBSERVED_NOTE} Moving average share of failures, 0 to 1.",
    )
    models = BackendModelSerializer(many=True, required=False)

    class Meta:
        model = Backend
        fields = [
            "name",
            "kind",
            "base_url",
            "privacy_zone",
            "capability_tier",
            "priority",
            "enabled",
            "max_concurrency",
            "api_key_env",
            "api_key_set",
            *OBSERVED_FIELDS,
            "models",
        ]

    def get_api_key_set(self, backend: Backend) -> bool:
        return backend_api_key_set(backend=backend)

    def to_representation(self, instance: Backend) -> dict[str, Any]:
        """``pending_requests`` as routing sees it: the live in-flight count of
        every process (proxied requests, decision-only routes) plus any value
        an external checker wrote."""
        data: dict[str, Any] = super().to_representation(instance)
        if "pending_requests" in data:
            live = in_flight_counts().get(instance.name, 0)
            data["pending_requests"] = instance.pending_requests + live
        return data

    def _write(self, instance: Backend, validated_data: dict[str, Any]) -> Backend:
        observed = {
            field: validated_data.pop(field)
            for field in OBSERVED_FIELDS
            if field in validated_data
        }
        offers = validated_data.pop("models", None)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        try:
            if observed and instance.pk and not validated_data and offers is None:
                # Only observed state: no configuration save, no audit, no version.
                return backend_observed_set(backend=instance, values=observed)
            return backend_save(
                backend=instance,
                models=offers,
                actor=self._actor(),
                observed=observed,
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None

    def create(self, validated_data: dict[str, Any]) -> Backend:
        return self._write(Backend(), validated_data)

    def update(self, instance: Backend, validated_data: dict[str, Any]) -> Backend:
        return self._write(instance, validated_data)


class AliasSerializer(AuditedModelSerializer):
    class Meta:
        model = Alias
        fields = ["name", "target"]


class FallbackChainSerializer(AuditedModelSerializer):
    fallbacks = serializers.ListField(
        child=serializers.CharField(max_length=200), allow_empty=False, max_length=5
    )

    class Meta:
        model = FallbackChain
        fields = ["model", "fallbacks"]


class TrafficPolicySerializer(AuditedModelSerializer):
    class Meta:
        model = TrafficPolicy
        fields = [
            "name",
            "model_pattern",
            "order",
            "privacy",
            "min_tier",
            "fallback_allowed",
            "max_cost_per_request_usd",
            "description",
        ]


#: Where ``BudgetListSerializer`` leaves each budget's ``BudgetForecast``, so a
#: list reads the ledger once, not once per budget.
FORECAST_ATTRIBUTE = "_forecast"


class BudgetListSerializer(serializers.ListSerializer):
    """Budgets with their forecasts computed in one query for the whole list."""

    def to_representation(self, data: Any) -> list[Any]:
        budgets = list(
            data.all() if isinstance(data, models.manager.BaseManager) else data
        )
        forecasts = budget_forecasts(budgets)
        for budget in budgets:
            setattr(budget, FORECAST_ATTRIBUTE, forecasts[budget.pk])
        return super().to_representation(budgets)


class BudgetSerializer(AuditedModelSerializer):
    """A budget: its limit, scope and alert settings (writable), its period
    totals and status, and where it is heading at its recent burn rate.

    ``scope`` and ``alert_thresholds`` are checked by ``Budget.clean``; its
    errors name ``scope.<field>`` (``scope.zones``) or ``alert_thresholds``.
    """

    status = serializers.CharField(read_only=True)
    burn_rate_usd_per_day = serializers.SerializerMethodField(
        help_text="Spend per day over the last 7 days of the period (or the "
        "period so far when shorter)."
    )
    projected_period_spend_usd = serializers.SerializerMethodField(
        help_text="Spent so far plus the burn rate for each day left."
    )
    exhausted_on = serializers.SerializerMethodField(
        help_text="The day spent + reserved would reach the limit at the burn "
        "rate (today when it has); null without a limit, spend, or before the "
        "period ends."
    )

    class Meta:
        model = Budget
        list_serializer_class = BudgetListSerializer
        fields = [
            "name",
            "monthly_limit_usd",
            "soft_limit_percent",
            "hard_limit_action",
            "reset_day",
            "scope",
            "alert_thresholds",
            "alert_webhook_url",
            "period_start",
            "period_end",
            "spent_usd",
            "reserved_usd",
            "status",
            "burn_rate_usd_per_day",
            "projected_period_spend_usd",
            "exhausted_on",
        ]
        read_only_fields = ["period_start", "period_end", "spent_usd", "reserved_usd"]

    def _forecast(self, budget: Budget) -> BudgetForecast:
        forecast = getattr(budget, FORECAST_ATTRIBUTE, None)
        if forecast is None:  # one budget (detail, create, update): one query
            forecast = budget_forecasts([budget])[budget.pk]
            setattr(budget, FORECAST_ATTRIBUTE, forecast)
        return forecast

    @extend_schema_field(serializers.FloatField())
    def get_burn_rate_usd_per_day(self, budget: Budget) -> Decimal:
        return self._forecast(budget).burn_rate_usd_per_day

    @extend_schema_field(serializers.FloatField())
    def get_projected_period_spend_usd(self, budget: Budget) -> Decimal:
        return self._forecast(budget).projected_period_spend_usd

    @extend_schema_field(serializers.DateField(allow_null=True))
    def get_exhausted_on(self, budget: Budget) -> str | None:
        day = self._forecast(budget).exhausted_on
        return None if day is None else day.isoformat()


SPEND_FIGURES = {
    "cost_usd": serializers.DecimalField(
        max_digits=20, decimal_places=6, help_text="real cost booked, USD"
    ),
    "requests": serializers.IntegerField(help_text="usage reports counted"),
    "input_tokens": serializers.IntegerField(),
    "output_tokens": serializers.IntegerField(),
    "estimated_cost_usd": serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        help_text="the routing estimates of the same requests, USD",
    ),
}
SPEND_KEYS = {
    "client": serializers.CharField(required=False),
    "model": serializers.CharField(required=False),
    "backend": serializers.CharField(required=False),
    "zone": serializers.CharField(required=False),
    "day": serializers.DateField(required=False),
}


class SpendSerializer(serializers.Serializer):
    """The answer of ``GET /api/v1/spend/`` (described for the schema; the
    view builds it)."""

    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    group_by = serializers.ListField(child=serializers.CharField())
    rows = inline_serializer("SpendRow", {**SPEND_KEYS, **SPEND_FIGURES}, many=True)
    total = inline_serializer("SpendTotal", SPEND_FIGURES)


#: Where ``DecisionListSerializer`` leaves each decision's usage report (None:
#: none reported), so the page reads them in one query.
USAGE_ATTRIBUTE = "_usage_report"


def _usage_reports(decision_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, UsageReport]:
    reports = UsageReport.objects.filter(decision_id__in=list(decision_ids))
    return {report.decision_id: report for report in reports}


class DecisionUsageSerializer(serializers.ModelSerializer):
    """What a decision really used: tokens, booked cost and where the figures came from."""

    class Meta:
        model = UsageReport
        fields = ["input_tokens", "output_tokens", "cost_usd", "source"]


class DecisionListSerializer(serializers.ListSerializer):
    """A page of decisions with their usage, and the templates of those stored
    as deltas, read in one query each, not one per row."""

    def to_representation(self, data: Any) -> list[Any]:
        decisions = list(
            data.all() if isinstance(data, models.manager.BaseManager) else data
        )
        reports = _usage_reports(decision.pk for decision in decisions)
        template_texts(decision_template_ids(decisions))  # one query, then in memory
        for decision in decisions:
            setattr(decision, USAGE_ATTRIBUTE, reports.get(decision.pk))
        return super().to_representation(decisions)


class DecisionSerializer(serializers.ModelSerializer):
    """A recorded decision: what the route call returned plus when, for whom, how
    fast, and for proxied requests the upstream attempts and the usage."""

    decision_id = serializers.UUIDField(source="id", read_only=True)
    attempts = serializers.JSONField(read_only=True)
    usage = serializers.SerializerMethodField()

    class Meta:
        model = RoutingDecision
        list_serializer_class = DecisionListSerializer
        fields = [
            "decision_id",
            "request_id",
            "created_at",
            "outcome",
            "requested_model",
            "model",
            "backend_name",
            "score",
            "reason",
            "estimated_cost_usd",
            "usage",
            "fallback_used",
            "pipeline_duration_us",
            "client",
            "config_version",
            "requirements",
            "constraints",
            "annotations",
            "trace",
            "warnings",
            "attempts",
            "sample",
        ]

    @extend_schema_field(DecisionUsageSerializer(allow_null=True))
    def get_usage(self, instance: RoutingDecision) -> dict[str, Any] | None:
        if hasattr(instance, USAGE_ATTRIBUTE):
            report = getattr(instance, USAGE_ATTRIBUTE)
        else:  # one decision (the detail view): one query
            report = _usage_reports([instance.pk]).get(instance.pk)
        if report is None:
            return None
        # One usage serializer for the page: its fields are built once, not
        # once per decision (a third of a page's time at 50 reports).
        usage = self.__dict__.get("_usage_serializer")
        if usage is None:
            usage = self.__dict__["_usage_serializer"] = DecisionUsageSerializer()
        return dict(usage.to_representation(report))

    def to_representation(self, instance: RoutingDecision) -> dict[str, Any]:
        data = super().to_representation(instance)
        # The JSON columns as the route call answered (either stored form).
        view = decision_view(instance)
        details = view.pop("details")
        data.update(view)
        data.update(details)
        return data


class BudgetAlertSerializer(serializers.ModelSerializer):
    """One threshold a budget crossed in one period, and its webhook delivery."""

    class Meta:
        model = BudgetAlert
        fields = [
            "threshold_percent",
            "period_start",
            "period_end",
            "status",
            "http_status",
            "attempts",
            "error",
            "spent_usd",
            "reserved_usd",
            "limit_usd",
            "exhausted_on",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields
