"""Query filters for the decisions list (validated: a bad value is a 400)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField

from routing.models import RoutingDecision
from routing.pipeline.types import Outcome
from routing.selectors import decisions_excluded_by, decisions_matching_model
from routing.timestamps import as_utc


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 timestamp, normalised to UTC (any offset Python accepts)."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        utc = as_utc(parsed)
        if utc is None:
            raise ValidationError(
                "This timestamp has no UTC equivalent; use one between years 1 and 9999."
            )
        return utc


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class DecisionFilter(django_filters.FilterSet):
    outcome = django_filters.ChoiceFilter(choices=[(o.value, o.value) for o in Outcome])
    model = django_filters.CharFilter(method="filter_model", max_length=200)
    backend = django_filters.CharFilter(field_name="backend_name", max_length=64)
    excluded_by = django_filters.CharFilter(method="filter_excluded_by", max_length=64)
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    request_id = django_filters.CharFilter(max_length=128)
    # A choice, not a BooleanFilter: that one ignores a value it cannot read.
    sample = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")], method="filter_sample"
    )

    class Meta:
        model = RoutingDecision
        fields: list[str] = []

    def filter_model(
        self, queryset: QuerySet[RoutingDecision], name: str, value: str
    ) -> QuerySet[RoutingDecision]:
        return decisions_matching_model(queryset, value)

    def filter_sample(
        self, queryset: QuerySet[RoutingDecision], name: str, value: str
    ) -> QuerySet[RoutingDecision]:
        return queryset.filter(sample=value == "true")

    def filter_excluded_by(
        self, queryset: QuerySet[RoutingDecision], name: str, value: str
    ) -> QuerySet[RoutingDecision]:
        return decisions_excluded_by(queryset, value)
