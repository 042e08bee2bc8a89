"""A crossed threshold becomes one alert row per (budget, period, threshold)."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.test import TestCase

from routing.models import AlertStatus, Budget, BudgetAlert
from routing.services.alerts import budget_alerts_check
from tests.budget_alerts import alerting_budget, budget_figures_set

pytestmark = pytest.mark.django_db


def thresholds_of(alerts: list[BudgetAlert]) -> list[int]:
    return sorted(alert.threshold_percent for alert in alerts)


def test_crossing_two_thresholds_at_once_creates_two_alerts() -> None:
    budget = alerting_budget(thresholds=[50, 80, 100], spent="70", reserved="15")
    created = budget_alerts_check()
    assert thresholds_of(created) == [50, 80]
    assert BudgetAlert.objects.filter(budget=budget).count() == 2


def test_the_alert_keeps_the_figures_at_crossing_time() -> None:
    budget = alerting_budget(thresholds=[80], spent="70.5", reserved="12.25")
    [alert] = budget_alerts_check()
    budget_figures_set(budget, spent="99")
    alert.refresh_from_db()
    assert (alert.spent_usd, alert.reserved_usd, alert.limit_usd) == (
        Decimal("70.5"),
        Decimal("12.25"),
        Decimal(100),
    )
    assert (alert.period_start, alert.period_end) == (
        budget.period_start,
        budget.period_end,
    )
    # Already at 82.75 of 100 and no spend in the ledger: no burn rate, no date.
    assert alert.exhausted_on is None


def test_a_budget_over_its_limit_is_exhausted_today() -> None:
    alerting_budget(thresholds=[100], spent="101")
    [alert] = budget_alerts_check()
    assert alert.exhausted_on == date.today()


def test_checking_again_creates_nothing_more() -> None:
    budget = alerting_budget(thresholds=[50, 80, 100], spent="60")
    assert thresholds_of(budget_alerts_check()) == [50]
    assert budget_alerts_check() == []
    budget_figures_set(budget, spent="100")
    assert thresholds_of(budget_alerts_check()) == [80, 100]
    assert budget_alerts_check() == []
    assert BudgetAlert.objects.filter(budget=budget).count() == 3


def test_a_new_period_alerts_again() -> None:
    budget = alerting_budget(thresholds=[80], spent="90")
    [first] = budget_alerts_check()
    Budget.objects.filter(pk=budget.pk).update(
        period_start=budget.period_end, period_end=date(2999, 1, 1)
    )
    [second] = budget_alerts_check()
    assert second.period_start == budget.period_end != first.period_start
    assert BudgetAlert.objects.filter(budget=budget).count() == 2


def test_below_every_threshold_nothing_is_created() -> None:
    alerting_budget(thresholds=[80, 100], spent="79.99")
    assert budget_alerts_check() == []


def test_a_budget_without_a_limit_or_without_thresholds_never_alerts() -> None:
    alerting_budget(name="tracking", limit=None, spent="1000")
    alerting_budget(name="quiet", thresholds=[], spent="1000")
    assert budget_alerts_check() == []


def test_an_idle_budget_with_a_zero_limit_does_not_alert() -> None:
    budget = alerting_budget(limit="0", thresholds=[100])
    assert budget_alerts_check() == []
    budget_figures_set(budget, spent="0.01")
    assert thresholds_of(budget_alerts_check()) == [100]


def test_only_the_budgets_asked_for_are_checked() -> None:
    asked = alerting_budget(name="asked", thresholds=[80], spent="90")
    alerting_budget(name="other", thresholds=[80], spent="90")
    [alert] = budget_alerts_check(budget_ids=[asked.pk])
    assert alert.budget_id == asked.pk
    assert BudgetAlert.objects.count() == 1


def test_without_a_webhook_the_alert_is_logged_and_nothing_is_enqueued() -> None:
    alerting_budget(thresholds=[80], spent="90")
    with TestCase.captureOnCommitCallbacks() as callbacks:
        [alert] = budget_alerts_check()
    assert alert.status == AlertStatus.LOGGED
    assert alert.webhook_url == ""
    assert callbacks == []


def test_with_a_webhook_the_alert_is_pending_and_enqueued_after_commit() -> None:
    url = "http://127.0.0.1:9/hooks/budget"
    alerting_budget(thresholds=[50, 80], spent="90", webhook=url)
    with TestCase.captureOnCommitCallbacks() as callbacks:
        alerts = budget_alerts_check()
    assert {a.status for a in alerts} == {AlertStatus.PENDING}
    assert {a.webhook_url for a in alerts} == {url}
    assert [c.func.__name__ for c in callbacks] == ["budget_alert_enqueue"] * 2  # type: ignore[attr-defined]
    assert sorted(c.args for c in callbacks) == sorted((a.pk,) for a in alerts)  # type: ignore[attr-defined]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_racing_checkers_create_one_alert(postgres: None) -> None:
    budget = alerting_budget(thresholds=[80], spent="90")
    results: list[list[BudgetAlert]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    locked = threading.Event()

    def first() -> None:
        # Insert, then hold the transaction open until the second checker waits.
        from django.db import transaction

        try:
            with transaction.atomic():
                results.append(budget_alerts_check(budget_ids=[budget.pk]))
                barrier.wait(timeout=10)
                locked.wait(timeout=10)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(budget_alerts_check(budget_ids=[budget.pk]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    _wait_for_a_lock_wait()
    locked.set()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors
    assert sorted(len(r) for r in results) == [0, 1]
    assert BudgetAlert.objects.filter(budget=budget).count() == 1


def _wait_for_a_lock_wait() -> None:
    """Until a session waits on a lock (the second INSERT on the first's row)."""
    import time

    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    pytest.fail("the second checker never waited on the first one's row")
