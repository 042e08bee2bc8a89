"""Read side: querysets and plain values for the API, the explorer and services."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Budget,
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


def budget_rows_enabled() -> list[Budget]:
    """Budgets with a limit (the ones routing checks and reserves on)."""
    return list(Budget.objects.filter(monthly_limit_usd__isnull=False).order_by("pk"))


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
