"""API views: thin ViewSets for resources, APIViews for actions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from django.db.models import Model
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing import selectors
from routing.api import serializers
from routing.api.auth import ApiClient, ConfigPermission, actor_name
from routing.api.filters import DecisionFilter
from routing.errors import NexusError, NotFoundError
from routing.models import Budget
from routing.pipeline.periods import budget_period
from routing.services.config import config_delete
from routing.services.health import OBSERVED_FIELDS
from routing.spend import GROUPS, SpendRow, spend_report
from routing.timestamps import parse_utc

NAME_IN_PATH = r"[^/]+"


class ConfigViewSet(viewsets.ModelViewSet):
    """CRUD for a configuration resource; deletes are audited too."""

    permission_classes = [ConfigPermission]
    lookup_value_regex = NAME_IN_PATH
    pagination_class = None

    def perform_destroy(self, instance: Model) -> None:
        config_delete(instance=instance, actor=actor_name(self.request))


class ZoneViewSet(ConfigViewSet):
    queryset = selectors.zone_list()
    serializer_class = serializers.PrivacyZoneSerializer
    lookup_field = "name"


class ObservedFieldsForbidden(NexusError):
    """A write of observed backend fields without the right to make it."""

    status_code = 403
    error_type = "forbidden"


class ObservedFieldsPermission(permissions.BasePermission):
    """Observed backend fields (health, load, latency, error rate) are written
    only with an admin API key or a superuser's login: they steer routing at
    once, like a probe result. Anyone else sending them gets a 403 naming
    them, never a write that silently drops them."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user: Any = request.user
        if request.method in permissions.SAFE_METHODS or not (
            user and user.is_authenticated
        ):
            return True  # ConfigPermission answers reads and 401s
        data = request.data
        sent = [f for f in OBSERVED_FIELDS if isinstance(data, Mapping) and f in data]
        if not sent or _may_write_observed(user):
            return True
        raise ObservedFieldsForbidden(
            f"Writing the observed fields {', '.join(sent)} needs an admin API "
            "key (they are stored like a probe result); leave them out of "
            "this request.",
            fields={field: ["Needs an admin API key."] for field in sent},
        )


def _may_write_observed(user: Any) -> bool:
    if isinstance(user, ApiClient):
        return user.is_admin
    return bool(getattr(user, "is_superuser", False))


class BackendViewSet(ConfigViewSet):
    permission_classes = [ObservedFieldsPermission, ConfigPermission]
    queryset = selectors.backend_list()
    serializer_class = serializers.BackendSerializer
    lookup_field = "name"


class AliasViewSet(ConfigViewSet):
    queryset = selectors.alias_list()
    serializer_class = serializers.AliasSerializer
    lookup_field = "name"


class FallbackChainViewSet(ConfigViewSet):
    queryset = selectors.fallback_list()
    serializer_class = serializers.FallbackChainSerializer
    lookup_field = "model"


class PolicyViewSet(ConfigViewSet):
    queryset = selectors.policy_list()
    serializer_class = serializers.TrafficPolicySerializer
    lookup_field = "name"


class BudgetViewSet(ConfigViewSet):
    queryset = selectors.budget_list()
    serializer_class = serializers.BudgetSerializer
    lookup_field = "name"

    @extend_schema(
        summary="A budget's alerts",
        description=(
            "Every threshold the budget crossed, one per (period, threshold), "
            "with its webhook delivery; newest first."
        ),
        responses=serializers.BudgetAlertSerializer(many=True),
    )
    @action(
        detail=True,
        methods=["get"],
        serializer_class=serializers.BudgetAlertSerializer,
        filter_backends=[],
    )
    def alerts(self, request: Request, name: str | None = None) -> Response:
        """``GET /api/v1/budgets/{name}/alerts/``."""
        budget = self.get_object()
        alerts = selectors.budget_alert_list(budget=budget)
        return Response(self.get_serializer(alerts, many=True).data)


class DecisionCursor(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request: Request) -> Cursor | None:
        """DRF's cursor, with its position checked: a bad cursor is a 400."""
        invalid = ValidationError(
            {"cursor": ["Not a cursor from this API; use a next or previous link."]}
        )
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise invalid from None
        if cursor is None or cursor.position is None:
            return cursor
        position = parse_utc(cursor.position)
        if position is None:
            raise invalid
        return cursor._replace(position=position.isoformat())


class DecisionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Recorded decisions, newest first, filterable, with cursor pagination."""

    queryset = selectors.decision_list()
    serializer_class = serializers.DecisionSerializer
    permission_classes = [permissions.IsAuthenticated]
    filter_backends = [DjangoFilterBackend]
    filterset_class = DecisionFilter
    pagination_class = DecisionCursor
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def get_object(self) -> Any:
        return super().get_object()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return super().list(request, *args, **kwargs)


def _when(raw: str, field: str) -> datetime:
    """A query timestamp: an ISO date (its midnight, UTC) or an ISO datetime
    (naive means UTC), in UTC."""
    text = raw.strip()
    if len(text) == 10:
        try:
            return datetime.combine(date.fromisoformat(text), time.min, tzinfo=UTC)
        except ValueError:
            pass
    parsed = parse_utc(text)
    if parsed is None:
        raise ValidationError(
            {
                field: [
                    "Give an ISO 8601 date (2026-11-01, midnight UTC) or "
                    "timestamp (2026-11-01T12:00:00Z)."
                ]
            }
        )
    return parsed


def _group_by(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(","))
    problem = None
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        problem = f"Unknown group {unknown[0]!r}."
    elif len(names) > 2:
        problem = "Group by one or two dimensions."
    elif len(set(names)) != len(names):
        problem = "Give each dimension once."
    if problem:
        raise ValidationError(
            {
                "group_by": [
                    f"{problem} Use one or two of {', '.join(GROUPS)}, "
                    "comma-separated (e.g. model,day)."
                ]
            }
        )
    return names


def _current_period() -> tuple[datetime, datetime]:
    """The current period of budget ``global`` (a calendar month without it)."""
    budget = Budget.objects.filter(name="global").first()
    reset_day = budget.reset_day if budget is not None else 1
    start, end = budget_period(timezone.now().date(), reset_day)
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end, time.min, tzinfo=UTC),
    )


class SpendApi(APIView):
    """Where the money goes: recorded usage in a window, grouped by one or two
    of client, model, backend, zone and day, optionally only what a budget
    governs; rows by cost descending (by day ascending when grouped by day)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "since",
                str,
                description="ISO date or timestamp (inclusive); default: the "
                "start of budget global's current period",
            ),
            OpenApiParameter(
                "until",
                str,
                description="ISO date or timestamp (exclusive); default: the "
                "end of budget global's current period",
            ),
            OpenApiParameter(
                "group_by",
                str,
                description="one or two of client, model, backend, zone, day, "
                "comma-separated; default model",
            ),
            OpenApiParameter(
                "budget", str, description="only the usage this budget governs"
            ),
        ],
        responses={200: serializers.SpendSerializer},
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        groups = _group_by(query.get("group_by") or "model")
        start, end = _current_period()
        since = _when(query["since"], "since") if "since" in query else start
        until = _when(query["until"], "until") if "until" in query else end
        if since > until:
            raise ValidationError({"until": ["Must not be before since."]})
        budget = None
        if "budget" in query:
            budget = Budget.objects.filter(name=query["budget"][:200]).first()
            if budget is None:
                raise NotFoundError(
                    f"No budget named {query['budget'][:200]!r}.",
                    fields={"budget": ["No budget has this name."]},
                )
        report = spend_report(since=since, until=until, group_by=groups, budget=budget)
        return Response(
            {
                "since": _iso(report.since),
                "until": _iso(report.until),
                "group_by": list(report.group_by),
                "rows": [_spend_row(row) for row in report.rows],
                "total": _spend_row(report.total),
            }
        )


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _spend_row(row: SpendRow) -> dict[str, Any]:
    keys = {
        name: value.isoformat() if isinstance(value, date) else value
        for name, value in row.keys.items()
    }
    return {
        **keys,
        "cost_usd": row.cost_usd,
        "requests": row.requests,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "estimated_cost_usd": row.estimated_cost_usd,
    }
