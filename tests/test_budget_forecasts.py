"""Budget forecasts: the burn rate over the last 7 days of the period, where it leads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from routing.models import Budget, LedgerEntry
from routing.selectors import budget_forecasts

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 20)


def budget(limit: str | None, spent: str, reserved: str = "0") -> Budget:
    return Budget.objects.create(
        name="team",
        monthly_limit_usd=Decimal(limit) if limit is not None else None,
        period_start=date(2026, 11, 1),
        period_end=date(2026, 12, 1),
        spent_usd=Decimal(spent),
        reserved_usd=Decimal(reserved),
    )


def spend(row: Budget, day: int, amount: str, period: date = date(2026, 11, 1)) -> None:
    LedgerEntry.objects.create(
        budget=row,
        kind="spend",
        amount_usd=Decimal(amount),
        period_start=period,
        created_at=datetime(2026, 11, day, 12, tzinfo=UTC),
    )


def test_the_burn_rate_is_the_last_seven_days_spend_per_day() -> None:
    row = budget("1000", spent="100")
    spend(row, 5, "30")  # before the window
    spend(row, 14, "14")  # the window's first day
    spend(row, 20, "21")
    forecast = budget_forecasts([row], today=TODAY)[row.pk]
    assert forecast.burn_rate_usd_per_day == Decimal("5")
    # 100 spent + 5/day for the 10 days after today (21st .. 30th)
    assert forecast.projected_period_spend_usd == Decimal("150")
    assert forecast.exhausted_on is None  # 1000 is not reached before Dec 1


def test_exhausted_on_is_the_day_the_limit_is_reached_at_that_rate() -> None:
    row = budget("130", spent="100", reserved="10")
    spend(row, 18, "35")
    forecast = budget_forecasts([row], today=TODAY)[row.pk]
    assert forecast.burn_rate_usd_per_day == Decimal("5")
    assert forecast.exhausted_on == date(2026, 11, 24)  # 20 left at $5/day


def test_a_budget_at_its_limit_is_exhausted_today_and_one_without_none() -> None:
    full = budget("100", spent="100")
    assert budget_forecasts([full], today=TODAY)[full.pk].exhausted_on == TODAY
    Budget.objects.filter(pk=full.pk).update(monthly_limit_usd=None)
    full.refresh_from_db()
    assert budget_forecasts([full], today=TODAY)[full.pk].exhausted_on is None


def test_a_period_younger_than_seven_days_divides_by_its_own_days() -> None:
    row = budget("1000", spent="9")
    Budget.objects.filter(pk=row.pk).update(
        period_start=date(2026, 11, 18), period_end=date(2026, 12, 18)
    )
    row.refresh_from_db()
    spend(row, 16, "50", period=date(2026, 10, 18))  # the previous period
    spend(row, 19, "9", period=date(2026, 11, 18))
    forecast = budget_forecasts([row], today=TODAY)[row.pk]
    assert forecast.burn_rate_usd_per_day == Decimal("3")  # 9 over 18th..20th
