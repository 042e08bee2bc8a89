"""``/api/v1/backtests/``: replay recorded decisions under a draft.

Thin views over ``routing.services.backtests`` (admin API key or staff login,
as drafts). ``POST`` answers 202 with a new queued backtest, or 200 with the
identical one still queued or running.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from routing import selectors
from routing.api.auth import DraftPermission, actor_name
from routing.api.views import DecisionCursor
from routing.models import Backtest, BacktestChange
from routing.pipeline.types import Outcome
from routing.services.backtests import backtest_cancel, backtest_request

BACKTEST_ID = "[0-9]{1,18}"
OUTCOMES = [o.value for o in Outcome]
OUTCOME_CHANGES = [f"{a}->{b}" for a in OUTCOMES for b in OUTCOMES]


class BacktestInputSerializer(serializers.Serializer):
    draft = serializers.IntegerField(
        allow_null=True,
        min_value=1,
        max_value=2**63 - 1,
        help_text="An open draft's id; null: today's configuration.",
    )
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    model = serializers.CharField(max_length=200, required=False)
    client = serializers.CharField(max_length=160, required=False)
    outcome = serializers.ChoiceField(choices=OUTCOMES, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["since"] >= attrs["until"]:
            raise ValidationError({"until": ["Must be after since."]})
        return attrs


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(source="progress_done")
    total = serializers.IntegerField(source="progress_total")


class BacktestSerializer(serializers.ModelSerializer):
    """A backtest: its request, status, progress and (when done) summary."""

    progress = ProgressSerializer(source="*", read_only=True)
    summary = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = Backtest
        fields = [
            "id",
            "draft",
            "since",
            "until",
            "filters",
            "status",
            "progress",
            "started_at",
            "finished_at",
            "error",
            "summary",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class BacktestChangeSerializer(serializers.ModelSerializer):
    """One decision whose replay differs from what was recorded."""

    before = serializers.JSONField(read_only=True)
    after = serializers.JSONField(read_only=True)

    class Meta:
        model = BacktestChange
        fields = [
            "decision_id",
            "created_at",
            "requested_model",
            "outcome_change",
            "before",
            "after",
        ]
        read_only_fields = fields


BACKTEST_PATH_ID = OpenApiParameter("id", int, OpenApiParameter.PATH)
CHANGE_FILTERS = [
    OpenApiParameter("outcome_change", str, enum=OUTCOME_CHANGES),
    OpenApiParameter(
        "backend", str, description="the backend before or after the replay"
    ),
]


class BacktestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Backtests (admin API key or staff login): recorded decisions replayed
    under a draft, in the background."""

    permission_classes = [DraftPermission]
    serializer_class = BacktestSerializer
    queryset = selectors.backtest_list()
    pagination_class = DecisionCursor
    lookup_value_regex = BACKTEST_ID
    http_method_names = ["get", "post", "delete", "head", "options"]

    @extend_schema(
        request=BacktestInputSerializer,
        responses={202: BacktestSerializer, 200: BacktestSerializer},
    )
    def create(self, request: Request) -> Response:
        """Queue a backtest (202), or answer the identical one still queued or
        running (200): never a second replay of the same request."""
        serializer = BacktestInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        backtest, created = backtest_request(
            draft_id=data["draft"],
            since=data["since"],
            until=data["until"],
            filters={k: data[k] for k in ("model", "client", "outcome") if k in data},
            actor=actor_name(request),
        )
        return Response(
            BacktestSerializer(backtest).data,
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )

    @extend_schema(parameters=[BACKTEST_PATH_ID])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One backtest, with its progress and summary."""
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(parameters=[BACKTEST_PATH_ID], responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Cancel a queued or running backtest, or remove a finished one."""
        backtest_cancel(backtest_id=int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[BACKTEST_PATH_ID, *CHANGE_FILTERS],
        responses={200: BacktestChangeSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], serializer_class=BacktestChangeSerializer)
    def changes(self, request: Request, pk: str) -> Response:
        """The changed decisions, newest first (cursor-paginated)."""
        backtest = self.get_object()
        params = request.query_params
        outcome_change = params.get("outcome_change")
        if outcome_change is not None and outcome_change not in OUTCOME_CHANGES:
            raise ValidationError(
                {"outcome_change": [f"Use one of {', '.join(OUTCOME_CHANGES)}."]}
            )
        changes = selectors.backtest_change_list(
            backtest=backtest,
            outcome_change=outcome_change,
            backend=params.get("backend") or None,
        )
        page = self.paginate_queryset(changes)
        data = BacktestChangeSerializer(page, many=True).data
        return self.get_paginated_response(data)
