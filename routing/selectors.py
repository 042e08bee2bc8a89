"""Read side: querysets and plain values for the API, the explorer and services."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Budget,
    ConfigVersion,
    DecisionExclusion,
    FallbackChain,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
)


def zone_list() -> QuerySet[PrivacyZone]:
    return PrivacyZone.objects.all()


def backend_list() -> QuerySet[Backend]:
    """Backends with their zone and served models, in one round of queries."""
    return Backend.objects.select_related("privacy_zone").prefetch_related(
        Prefetch("models", queryset=BackendModel.objects.order_by("name"))
    )


def alias_list() -> QuerySet[Alias]:
    return Alias.objects.all()


def fallback_list() -> QuerySet[FallbackChain]:
    return FallbackChain.objects.all()


def policy_list() -> QuerySet[TrafficPolicy]:
    return TrafficPolicy.objects.all()


def budget_list() -> QuerySet[Budget]:
    return Budget.objects.all()


@dataclass(frozen=True)
class RoutingState:
    """What routing reads on every call: config versions and enabled budgets."""

    version: int
    state_version: int
    budgets: list[Budget]


_BUDGET_COLUMNS = (
    "id",
    "name",
    "monthly_limit_usd",
    "soft_limit_percent",
    "hard_limit_action",
    "reset_day",
    "period_start",
    "period_end",
    "spent_usd",
    "reserved_usd",
)


def _budget_from_row(values: tuple[Any, ...]) -> Budget:
    fields: dict[str, Any] = dict(zip(_BUDGET_COLUMNS, values, strict=True))
    for name in ("monthly_limit_usd", "spent_usd", "reserved_usd"):
        if fields[name] is not None:
            fields[name] = Decimal(str(fields[name]))
    for name in ("period_start", "period_end"):
        fields[name] = Budget._meta.get_field(name).to_python(fields[name])
    return Budget(**fields)


def routing_state() -> RoutingState:
    """Config versions and every enabled budget in one round trip.

    Plain SQL because it runs on every route call (the ORM spent more time
    compiling these two queries than the database spent answering them).
    """
    quote = connection.ops.quote_name
    budget_columns = ", ".join(f"b.{quote(c)}" for c in _BUDGET_COLUMNS)
    sql = (
        f"SELECT v.version, v.state_version, {budget_columns} "
        f"FROM {quote(ConfigVersion._meta.db_table)} v "
        f"LEFT JOIN {quote(Budget._meta.db_table)} b "
        "ON b.monthly_limit_usd IS NOT NULL WHERE v.id = 1 ORDER BY b.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    if not rows:
        return RoutingState(0, 0, [])
    budgets = [_budget_from_row(row[2:]) for row in rows if row[2] is not None]
    return RoutingState(int(rows[0][0]), int(rows[0][1]), budgets)


def decision_list() -> QuerySet[RoutingDecision]:
    """Recorded decisions, newest first."""
    return RoutingDecision.objects.order_by("-created_at", "-id")


def decisions_matching_model(
    queryset: QuerySet[RoutingDecision], model: str
) -> QuerySet[RoutingDecision]:
    """Decisions whose requested or resolved model is ``model``."""
    return queryset.filter(Q(requested_model=model) | Q(model=model))


def decisions_excluded_by(
    queryset: QuerySet[RoutingDecision], reconciler: str
) -> QuerySet[RoutingDecision]:
    """Decisions in which ``reconciler`` excluded at least one backend."""
    exclusions = DecisionExclusion.objects.filter(
        decision=OuterRef("pk"), reconciler=reconciler
    )
    return queryset.filter(Exists(exclusions))
