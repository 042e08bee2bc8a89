"""Action endpoints: route a request, report usage, describe the pipeline."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing import metrics
from routing.adapters import shared_pipeline
from routing.api.auth import ApiClient, client_name
from routing.api.fields import PlainDecimalField, PlainFloatField, PlainIntegerField
from routing.api.renderers import FastJSONRenderer
from routing.api.routing_input import (
    RouteInputSerializer,
    request_id_from,
    routing_request_from,
    validated_route_body,
)
from routing.pipeline import MODEL_NOT_FOUND, RoutingResult
from routing.pipeline.types import Outcome
from routing.services.ledger import UsageReporter, usage_record
from routing.services.passive_health import in_flight_counts, routed_hold
from routing.services.proxy import REPORTED_OUTCOMES, reported_usage_observe
from routing.services.routing import route_request

HEADERS = [
    OpenApiParameter("X-Request-ID", str, OpenApiParameter.HEADER, required=False),
    OpenApiParameter("X-Nexus-Privacy", str, OpenApiParameter.HEADER, required=False),
    OpenApiParameter("X-Nexus-Min-Tier", int, OpenApiParameter.HEADER, required=False),
    OpenApiParameter("X-Nexus-Strict", bool, OpenApiParameter.HEADER, required=False),
    OpenApiParameter("X-Nexus-Flexible", bool, OpenApiParameter.HEADER, required=False),
    OpenApiParameter(
        "X-Nexus-Max-Cost", float, OpenApiParameter.HEADER, required=False
    ),
]
DECISION = inline_serializer(
    "RouteDecision",
    {
        "decision_id": serializers.UUIDField(allow_null=True),
        "request_id": serializers.CharField(),
        "outcome": serializers.ChoiceField(choices=[o.value for o in Outcome]),
        "requested_model": serializers.CharField(),
        "model": serializers.CharField(),
        "annotations": serializers.DictField(),
        "trace": serializers.ListField(child=serializers.DictField()),
        "warnings": serializers.ListField(child=serializers.CharField()),
    },
)


def _status_for(result: RoutingResult) -> int:
    if result.outcome is not Outcome.REJECT:
        return status.HTTP_200_OK
    if result.error_type == MODEL_NOT_FOUND:
        return status.HTTP_404_NOT_FOUND
    return status.HTTP_503_SERVICE_UNAVAILABLE


class RouteApi(APIView):
    """Decide where an OpenAI-style chat request should run (and record why)."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [FastJSONRenderer]

    @extend_schema(
        request=RouteInputSerializer,
        parameters=HEADERS,
        responses={200: DECISION, 404: DECISION, 503: DECISION},
    )
    def post(self, request: Request) -> Response:
        request_id = request_id_from(request.headers)
        routing_request, dry_run = routing_request_from(
            validated_route_body(request.data), request.headers
        )
        outcome = route_request(
            request=routing_request,
            request_id=request_id,
            client=client_name(request),
            api_key_id=_api_key_id(request),
            dry_run=dry_run,
            in_flight=in_flight_counts(),
        )
        result = outcome.result
        decision_id = str(outcome.decision_id) if outcome.decision_id else None
        backend = result.backend_name
        if decision_id and result.outcome is Outcome.ROUTE and backend is not None:
            routed_hold(backend=backend, decision_id=decision_id)
        body = {"decision_id": decision_id, "request_id": request_id}
        body.update(result.to_dict())
        if outcome.decision_id is not None:
            metrics.decision_observed(result, outcome.duration_us)
        response = Response(body, status=_status_for(result))
        response["X-Request-ID"] = request_id
        if decision_id:
            response["X-Nexus-Decision-Id"] = decision_id
        return response


def _api_key_id(request: Request) -> int | None:
    user: Any = request.user
    return user.key_id if isinstance(user, ApiClient) else None


def _reporter(request: Request) -> UsageReporter:
    """The key that routed a decision (or an admin key) reports its usage; a
    login session reports the decisions it routed (a superuser: any)."""
    user: Any = request.user
    if isinstance(user, ApiClient):
        return UsageReporter(
            api_key_id=user.key_id, client=user.name, is_admin=user.is_admin
        )
    return UsageReporter(
        api_key_id=None, client=client_name(request), is_admin=user.is_superuser
    )


class UsageInputSerializer(serializers.Serializer):
    decision_id = serializers.UUIDField()
    input_tokens = PlainIntegerField(min_value=0, max_value=100_000_000)
    output_tokens = PlainIntegerField(min_value=0, max_value=100_000_000)
    cost_usd = PlainDecimalField(
        max_digits=14, decimal_places=6, min_value=0, required=False, allow_null=True
    )
    # Optional, for clients that call backends themselves: they feed the same
    # moving averages and passive health as the proxy's own attempts.
    latency_ms = PlainFloatField(
        min_value=0, max_value=86_400_000, required=False, allow_null=True
    )
    ttft_ms = PlainFloatField(
        min_value=0, max_value=86_400_000, required=False, allow_null=True
    )
    outcome = serializers.ChoiceField(
        choices=list(REPORTED_OUTCOMES), required=False, allow_blank=False
    )


class UsageApi(APIView):
    """Report what a routed request really used; settles its budget reservation."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=UsageInputSerializer,
        responses={
            200: inline_serializer(
                "UsageRecorded",
                {
                    "decision_id": serializers.UUIDField(),
                    "input_tokens": serializers.IntegerField(),
                    "output_tokens": serializers.IntegerField(),
                    "cost_usd": serializers.FloatField(),
                    "created": serializers.BooleanField(),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        data = UsageInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        result = usage_record(**values, source="reported", reporter=_reporter(request))
        report = result.report
        if result.created:
            reported_usage_observe(
                decision_id=report.decision_id,
                outcome=values.get("outcome"),
                ttft_ms=values.get("ttft_ms"),
            )
        metrics.usage_observed(float(report.cost_usd), created=result.created)
        return Response(
            {
                "decision_id": str(report.decision_id),
                "input_tokens": report.input_tokens,
                "output_tokens": report.output_tokens,
                "cost_usd": float(report.cost_usd),
                "created": result.created,
            },
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class PipelineApi(APIView):
    """The reconcilers in execution order with their error policies, the smart
    strategy's scorers in order with their weights, and the strategy."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={
            200: inline_serializer(
                "Pipeline",
                {
                    "reconcilers": inline_serializer(
                        "PipelineStage",
                        {
                            "name": serializers.CharField(),
                            "error_policy": serializers.CharField(),
                        },
                        many=True,
                    ),
                    "scorers": inline_serializer(
                        "PipelineScorer",
                        {
                            "name": serializers.CharField(),
                            "weight": serializers.FloatField(),
                        },
                        many=True,
                    ),
                    "strategy": serializers.CharField(),
                },
            )
        }
    )
    def get(self, request: Request) -> Response:
        pipeline = shared_pipeline()
        return Response(
            {
                "reconcilers": pipeline.describe(),
                "scorers": pipeline.describe_scorers(),
                "strategy": pipeline.settings.strategy.value,
            }
        )
