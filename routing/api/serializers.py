"""Serializers for configuration resources and recorded decisions.

Writes go through the audited services; model-layer validation errors come back
as DRF validation errors, so the API says exactly what the admin says.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from routing.api.fields import PlainNumbersModelSerializer
from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Budget,
    FallbackChain,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
    UsageReport,
)
from routing.services.backends import backend_save
from routing.services.config import config_save


def _save(instance: models.Model, actor: str) -> None:
    try:
        config_save(instance=instance, actor=actor)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict) from None


class AuditedModelSerializer(PlainNumbersModelSerializer):
    """Creates and updates through ``config_save`` with the request's actor."""

    def _actor(self) -> str:
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


class BackendSerializer(AuditedModelSerializer):
    privacy_zone = serializers.SlugRelatedField(
        slug_field="name",
        queryset=PrivacyZone.objects.all(),
        allow_null=True,
        required=False,
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
            "health",
            "loading_eta_ms",
            "pending_requests",
            "latency_ema_ms",
            "error_rate",
            "models",
        ]
        read_only_fields = [
            "health",
            "loading_eta_ms",
            "pending_requests",
            "latency_ema_ms",
            "error_rate",
        ]

    def _write(self, instance: Backend, validated_data: dict[str, Any]) -> Backend:
        offers = validated_data.pop("models", None)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        try:
            return backend_save(backend=instance, models=offers, actor=self._actor())
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


class BudgetSerializer(AuditedModelSerializer):
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Budget
        fields = [
            "name",
            "monthly_limit_usd",
            "soft_limit_percent",
            "hard_limit_action",
            "reset_day",
            "period_start",
            "period_end",
            "spent_usd",
            "reserved_usd",
            "status",
        ]
        read_only_fields = ["period_start", "period_end", "spent_usd", "reserved_usd"]


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
    """A page of decisions with their usage read in one query, not one per row."""

    def to_representation(self, data: Any) -> list[Any]:
        decisions = list(
            data.all() if isinstance(data, models.manager.BaseManager) else data
        )
        reports = _usage_reports(decision.pk for decision in decisions)
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
        ]

    @extend_schema_field(DecisionUsageSerializer(allow_null=True))
    def get_usage(self, instance: RoutingDecision) -> dict[str, Any] | None:
        if hasattr(instance, USAGE_ATTRIBUTE):
            report = getattr(instance, USAGE_ATTRIBUTE)
        else:  # one decision (the detail view): one query
            report = _usage_reports([instance.pk]).get(instance.pk)
        if report is None:
            return None
        return dict(DecisionUsageSerializer(report).data)

    def to_representation(self, instance: RoutingDecision) -> dict[str, Any]:
        data = super().to_representation(instance)
        details = dict(instance.details or {})
        data.update(details)
        return data
