"""A delivery the broker refused is never an error, and the periodic check re-sends it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from routing.models import AlertStatus, BudgetAlert
from routing.services.alerts import (
    alert_stale_after,
    budget_alerts_check,
    budget_alerts_resend_stale,
)
from tests.budget_alerts import alerting_budget
from tests.unreachable_broker import enqueue_failures, unreachable_broker

__all__ = ["unreachable_broker"]  # the fixture, used by name below

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

TASK = "routing.budget_alert_deliver"


def test_an_alert_created_with_the_broker_down_stays_pending(
    unreachable_broker: str,
) -> None:
    failures = enqueue_failures(TASK)
    alerting_budget(thresholds=[80], spent="90", webhook="http://127.0.0.1:9/hook")
    [alert] = budget_alerts_check()  # commits; the enqueue after it fails quietly
    assert enqueue_failures(TASK) == failures + 1
    assert BudgetAlert.objects.get(pk=alert.pk).status == AlertStatus.PENDING


def test_only_pending_alerts_older_than_their_retries_are_sent_again(
    unreachable_broker: str,
) -> None:
    alerting_budget(
        thresholds=[50, 80, 100], spent="100", webhook="http://127.0.0.1:9/hook"
    )
    lost, recent, done = budget_alerts_check()
    long_ago = timezone.now() - alert_stale_after() - timedelta(seconds=1)
    BudgetAlert.objects.filter(pk__in=[lost.pk, done.pk]).update(created_at=long_ago)
    BudgetAlert.objects.filter(pk=done.pk).update(status=AlertStatus.SENT)
    failures = enqueue_failures(TASK)
    assert budget_alerts_resend_stale() == [lost.pk]
    assert enqueue_failures(TASK) == failures + 1


def test_a_pending_alert_waits_as_long_as_its_retries_could_take(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NEXUS_BUDGET_ALERT_MAX_ATTEMPTS = 5
    settings.NEXUS_BUDGET_ALERT_RETRY_BACKOFF_S = 2
    settings.NEXUS_BUDGET_ALERT_TIMEOUT_S = 5
    # 2 + 4 + 8 + 16 s between attempts, 5 POSTs of up to 4 timeouts, 60 s margin.
    assert alert_stale_after() == timedelta(seconds=30 + 100 + 60)
