"""Serializers for configuration resources and recorded decisions.

Writes go through the audited services; model-layer validation errors come back
as DRF validation errors, so the API says exactly what the admin says.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
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


class DecisionSerializer(serializers.ModelSerializer):
    """A recorded decision: what the route call returned plus when, for whom, how fast."""

    decision_id = serializers.UUIDField(source="id", read_only=True)

    class Meta:
        model = RoutingDecision
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
            "fallback_used",
            "pipeline_duration_us",
            "client",
            "config_version",
            "requirements",
            "constraints",
            "annotations",
            "trace",
            "warnings",
        ]

    def to_representation(self, instance: RoutingDecision) -> dict[str, Any]:
        data = super().to_representation(instance)
        details = dict(instance.details or {})
        data.update(details)
        return data
