"""Budgets with alert thresholds, at chosen figures, for the alert tests."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from routing.models import Budget
from routing.pipeline.periods import budget_period


def alerting_budget(
    *,
    name: str = "team-a",
    limit: str | None = "100",
    thresholds: list[int] | None = None,
    webhook: str = "",
    spent: str = "0",
    reserved: str = "0",
) -> Budget:
    """A budget in the period containing today, with ``spent`` and ``reserved``."""
    budget = Budget(
        name=name,
        monthly_limit_usd=None if limit is None else Decimal(limit),
        alert_thresholds=[80, 100] if thresholds is None else thresholds,
        alert_webhook_url=webhook,
    )
    budget.full_clean()
    budget.save()
    return budget_figures_set(budget, spent=spent, reserved=reserved)


def budget_figures_set(budget: Budget, *, spent: str, reserved: str = "0") -> Budget:
    """Set the cached totals as the ledger would, in the current period."""
    start, end = budget_period(timezone.now().date(), budget.reset_day)
    Budget.objects.filter(pk=budget.pk).update(
        spent_usd=Decimal(spent),
        reserved_usd=Decimal(reserved),
        period_start=start,
        period_end=end,
    )
    return Budget.objects.get(pk=budget.pk)
