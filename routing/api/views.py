"""API views: thin ViewSets for resources, APIViews for actions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Model
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from routing import selectors
from routing.api import serializers
from routing.api.auth import ApiClient, ConfigPermission, actor_name
from routing.api.filters import DecisionFilter
from routing.errors import NexusError
from routing.services.config import config_delete
from routing.services.health import OBSERVED_FIELDS
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
