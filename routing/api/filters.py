"""Query filters for the decisions list (validated: a bad value is a 400)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from routing.models import RoutingDecision
from routing.pipeline.types import Outcome
from routing.selectors import decisions_excluded_by, decisions_matching_model


class DecisionFilter(django_filters.FilterSet):
    outcome = django_filters.ChoiceFilter(choices=[(o.value, o.value) for o in Outcome])
    model = django_filters.CharFilter(method="filter_model", max_length=200)
    backend = django_filters.CharFilter(field_name="backend_name", max_length=64)
    excluded_by = django_filters.CharFilter(method="filter_excluded_by", max_length=64)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    request_id = django_filters.CharFilter(max_length=128)

    class Meta:
        model = RoutingDecision
        fields: list[str] = []

    def filter_model(
        self, queryset: QuerySet[RoutingDecision], name: str, value: str
    ) -> QuerySet[RoutingDecision]:
        return decisions_matching_model(queryset, value)

    def filter_excluded_by(
        self, queryset: QuerySet[RoutingDecision], name: str, value: str
    ) -> QuerySet[RoutingDecision]:
        return decisions_excluded_by(queryset, value)
