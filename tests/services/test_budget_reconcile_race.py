"""Two reconciliations racing on PostgreSQL roll a period over once, with right totals."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from routing.models import Budget, LedgerEntry
from routing.services.budgets import BudgetReconcileResult, budget_reconcile_all
from tests.factories import LedgerEntryFactory

D = Decimal
THREADS = 4


def race(now: datetime) -> list[BudgetReconcileResult]:
    """Run ``budget_reconcile_all`` in several threads released at the same moment."""
    barrier = threading.Barrier(THREADS)
    results: list[BudgetReconcileResult] = []
    errors: list[BaseException] = []

    def reconcile() -> None:
        try:
            barrier.wait(timeout=10)
            results.extend(budget_reconcile_all(now=now))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=reconcile) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a reconciliation hung"
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_racing_reconciliations_roll_the_period_over_once(postgres: None) -> None:
    budget, _ = Budget.objects.update_or_create(
        name="global",
        defaults={
            "monthly_limit_usd": D(100),
            "reset_day": 1,
            "period_start": date(2026, 1, 1),
            "period_end": date(2026, 2, 1),
            "spent_usd": D(50),
            "reserved_usd": D(9),
        },
    )
    now = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    LedgerEntryFactory(budget=budget, kind="spend", amount_usd=D(40))
    LedgerEntryFactory(
        budget=budget, kind="spend", amount_usd=D(3), period_start=date(2026, 2, 1)
    )
    fresh = LedgerEntryFactory(budget=budget, kind="reserve", amount_usd=D("0.25"))
    stale = LedgerEntryFactory(budget=budget, kind="reserve", amount_usd=D("0.75"))
    LedgerEntry.objects.filter(pk=fresh.pk).update(created_at=now)
    LedgerEntry.objects.filter(pk=stale.pk).update(created_at=now - timedelta(hours=1))

    results = [r for r in race(now) if r.budget_id == budget.pk]

    budget.refresh_from_db()
    assert len(results) == THREADS
    assert sum(r.rolled_over for r in results) == 1
    assert sum(r.released for r in results) == 1
    assert (budget.period_start, budget.period_end) == (
        date(2026, 2, 1),
        date(2026, 3, 1),
    )
    assert (budget.spent_usd, budget.reserved_usd) == (D(3), D("0.25"))
    assert LedgerEntry.objects.filter(kind="release").count() == 1
