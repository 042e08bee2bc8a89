"""Budget reconciliation rolls periods over, releases stale reservations, fixes drift."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from routing.models import Budget, LedgerEntry
from routing.services import budgets
from routing.services.budgets import (
    budget_period_rollover,
    budget_reconcile,
    budget_reconcile_all,
    reservation_release_expired,
)
from routing.services.config import config_version_current
from tests.factories import LedgerEntryFactory, global_budget

pytestmark = pytest.mark.django_db

D = Decimal
JANUARY = date(2026, 1, 1)
FEBRUARY = date(2026, 2, 1)
MID_JANUARY = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
EARLY_FEBRUARY = datetime(2026, 2, 3, 8, 0, tzinfo=UTC)


@pytest.fixture
def budget() -> Budget:
    """The global budget: $100 a month, in January 2026."""
    Budget.objects.filter(name="global").update(
        monthly_limit_usd=D(100), reset_day=1, period_start=JANUARY, period_end=FEBRUARY
    )
    return global_budget()


def entry(budget: Budget, kind: str, amount: str, **fields: object) -> LedgerEntry:
    return LedgerEntryFactory(budget=budget, kind=kind, amount_usd=D(amount), **fields)


def reserve_at(budget: Budget, amount: str, created_at: datetime) -> LedgerEntry:
    reserve = entry(budget, "reserve", amount)
    LedgerEntry.objects.filter(pk=reserve.pk).update(created_at=created_at)
    return reserve


def totals(budget: Budget) -> tuple[Decimal, Decimal]:
    budget.refresh_from_db()
    return budget.spent_usd, budget.reserved_usd


def test_drift_in_cached_totals_is_corrected_from_the_ledger(budget: Budget) -> None:
    entry(budget, "spend", "2.50")
    entry(budget, "spend", "1.25")
    entry(budget, "reserve", "0.40")
    Budget.objects.filter(pk=budget.pk).update(spent_usd=D(99), reserved_usd=D(-3))
    result = budget_reconcile(budget_id=budget.pk, now=MID_JANUARY)
    assert totals(budget) == (D("3.75"), D("0.40"))
    assert result.spent_drift_usd == D("95.25")
    assert result.reserved_drift_usd == D("-3.40")


def test_reconciling_twice_changes_nothing_the_second_time(budget: Budget) -> None:
    entry(budget, "spend", "2")
    reserve_at(budget, "1", MID_JANUARY - timedelta(hours=1))
    first = budget_reconcile(budget_id=budget.pk, now=MID_JANUARY)
    ledger_size = LedgerEntry.objects.count()
    second = budget_reconcile(budget_id=budget.pk, now=MID_JANUARY)
    assert first.released == 1 and first.spent_drift_usd == D(-2)
    assert (second.rolled_over, second.released) == (False, 0)
    assert (second.spent_drift_usd, second.reserved_drift_usd) == (0, 0)
    assert LedgerEntry.objects.count() == ledger_size
    assert totals(budget) == (D(2), D(0))


def test_a_correct_budget_is_left_alone_and_the_config_version_does_not_move(
    budget: Budget,
) -> None:
    version = config_version_current()
    result = budget_reconcile(budget_id=budget.pk, now=MID_JANUARY)
    assert result == budgets.BudgetReconcileResult(budget_id=budget.pk)
    assert config_version_current() == version


def test_the_period_rolls_over_on_its_reset_day(budget: Budget) -> None:
    entry(budget, "spend", "7")
    result = budget_reconcile(budget_id=budget.pk, now=EARLY_FEBRUARY)
    budget.refresh_from_db()
    assert result.rolled_over
    assert (budget.period_start, budget.period_end) == (FEBRUARY, date(2026, 3, 1))
    assert budget.spent_usd == 0  # January's spend stays in January


def test_the_new_period_counts_only_its_own_spend_but_keeps_open_reservations(
    budget: Budget,
) -> None:
    entry(budget, "spend", "7")
    entry(budget, "reserve", "0.30")  # not yet expired, from January
    entry(budget, "spend", "1.5", period_start=FEBRUARY)
    budget_reconcile(budget_id=budget.pk, now=EARLY_FEBRUARY)
    assert totals(budget) == (D("1.5"), D("0.30"))


def test_a_second_rollover_of_the_same_period_does_nothing(budget: Budget) -> None:
    today = EARLY_FEBRUARY.date()
    assert budget_period_rollover(budget_id=budget.pk, today=today) is True
    assert budget_period_rollover(budget_id=budget.pk, today=today) is False
    budget.refresh_from_db()
    assert budget.period_start == FEBRUARY


def test_a_budget_many_periods_behind_jumps_to_the_current_one(
    budget: Budget,
) -> None:
    budget_reconcile(budget_id=budget.pk, now=datetime(2026, 6, 20, tzinfo=UTC))
    budget.refresh_from_db()
    assert (budget.period_start, budget.period_end) == (
        date(2026, 6, 1),
        date(2026, 7, 1),
    )


def test_the_period_follows_the_reset_day(budget: Budget) -> None:
    Budget.objects.filter(pk=budget.pk).update(
        reset_day=15, period_start=date(2025, 12, 15), period_end=date(2026, 1, 15)
    )
    budget_reconcile(budget_id=budget.pk, now=MID_JANUARY)
    budget.refresh_from_db()
    assert (budget.period_start, budget.period_end) == (
        date(2026, 1, 15),
        date(2026, 2, 15),
    )


def test_a_budget_without_a_period_gets_one_even_when_disabled() -> None:
    Budget.objects.filter(name="global").update(
        monthly_limit_usd=None, period_start=None, period_end=None
    )
    [result] = budget_reconcile_all(now=MID_JANUARY)
    budget = global_budget()
    assert result.rolled_over
    assert (budget.period_start, budget.period_end) == (JANUARY, FEBRUARY)


def test_a_reservation_older_than_the_ttl_is_released(budget: Budget, settings) -> None:  # type: ignore[no-untyped-def]
    settings.NEXUS_RESERVATION_TTL_SECONDS = 900
    stale = reserve_at(budget, "0.80", MID_JANUARY - timedelta(seconds=901))
    reserve_at(budget, "0.20", MID_JANUARY - timedelta(seconds=899))
    Budget.objects.filter(pk=budget.pk).update(reserved_usd=D("1.00"))
    assert reservation_release_expired(budget_id=budget.pk, now=MID_JANUARY) == 1
    release = LedgerEntry.objects.get(kind="release")
    assert release.decision_id == stale.decision_id
    assert release.amount_usd == D("-0.80")
    assert release.note == "expired after 900 s"
    assert totals(budget) == (D(0), D("0.20"))


def test_a_settled_reservation_is_not_released_again(budget: Budget) -> None:
    reserve = reserve_at(budget, "0.80", MID_JANUARY - timedelta(hours=2))
    entry(budget, "release", "-0.80", decision_id=reserve.decision_id)
    assert reservation_release_expired(budget_id=budget.pk, now=MID_JANUARY) == 0
    assert LedgerEntry.objects.filter(kind="release").count() == 1


def test_a_reservation_settled_after_it_was_listed_is_not_released_twice(
    budget: Budget, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The ledger's unique constraint is the compare-and-set for releases."""
    reserve = reserve_at(budget, "0.80", MID_JANUARY - timedelta(hours=2))
    listed = list(
        budgets.reservation_list_expired(
            budget_id=budget.pk, now=MID_JANUARY, ttl_seconds=900
        )
    )
    entry(budget, "release", "-0.80", decision_id=reserve.decision_id)
    Budget.objects.filter(pk=budget.pk).update(reserved_usd=D(0))
    monkeypatch.setattr(budgets, "reservation_list_expired", lambda **kwargs: listed)
    assert reservation_release_expired(budget_id=budget.pk, now=MID_JANUARY) == 0
    assert LedgerEntry.objects.filter(kind="release").count() == 1
    assert totals(budget) == (D(0), D(0))


def test_expired_reservations_are_released_in_batches(
    budget: Budget, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(budgets, "RELEASE_BATCH_SIZE", 2)
    for _ in range(5):
        reserve_at(budget, "0.10", MID_JANUARY - timedelta(hours=1))
    assert reservation_release_expired(budget_id=budget.pk, now=MID_JANUARY) == 5
    assert LedgerEntry.objects.filter(kind="release").count() == 5
