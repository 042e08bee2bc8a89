"""Real Celery workers and beat deliver budget alerts: retried, and once.

Subprocesses (``celery -A nexus_site ...``) on the test's PostgreSQL database and
the configured broker, as in ``test_real_worker``; they skip locally without them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from routing.models import AlertStatus, BudgetAlert
from routing.services.alerts import budget_alert_enqueue, budget_alerts_check
from tests.budget_alerts import alerting_budget
from tests.http_servers import WebhookReceiver
from tests.tasks import test_real_worker as real

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

celery_env = real.celery_env


@pytest.fixture
def alert_env(celery_env: dict[str, str]) -> dict[str, str]:
    """Checks every second, retries after 0.2 s then 0.4 s; no reconciliation
    (it would recount the injected spend from the empty ledger)."""
    return {
        **celery_env,
        "NEXUS_BUDGET_RECONCILE_INTERVAL_SECONDS": "3600",
        "NEXUS_BUDGET_ALERT_CHECK_INTERVAL_SECONDS": "1",
        "NEXUS_BUDGET_ALERT_RETRY_BACKOFF_S": "0.2",
        "NEXUS_BUDGET_ALERT_TIMEOUT_S": "5",
    }


def receiver_of(**kwargs: object) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(**kwargs).start()  # type: ignore[arg-type]
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def flaky_receiver() -> Iterator[WebhookReceiver]:
    """Answers 500 twice, then 200."""
    yield from receiver_of(script=[500, 500])


@pytest.fixture
def slow_receiver() -> Iterator[WebhookReceiver]:
    """Answers 200 after a second, so deliveries overlap."""
    receiver = WebhookReceiver().start()
    receiver.delay_s = 1.0
    try:
        yield receiver
    finally:
        receiver.stop()


def test_beat_finds_the_crossing_and_the_worker_retries_until_delivered(
    alert_env: dict[str, str], flaky_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    budget = alerting_budget(thresholds=[80], spent="90", webhook=flaky_receiver.url)
    beat_args = ["beat", "--loglevel=INFO", "-s", str(tmp_path / "beat-schedule")]
    with (
        real.celery(real.worker_args(), alert_env, tmp_path / "worker.log"),
        real.celery(beat_args, alert_env, tmp_path / "beat.log"),
    ):
        real.wait_for(
            lambda: BudgetAlert.objects.filter(
                budget=budget, status=AlertStatus.SENT
            ).exists(),
            "the beat's check to create the alert and a worker to deliver it",
        )
    alert = BudgetAlert.objects.get(budget=budget)
    assert (alert.attempts, alert.http_status, alert.error) == (3, 200, "")
    assert [post.status for post in flaky_receiver.posts] == [500, 500, 200]
    [delivered] = flaky_receiver.delivered
    assert delivered.json()["threshold_percent"] == 80
    assert "Sending due task budget-alerts-check" in (tmp_path / "beat.log").read_text()


def test_two_workers_given_the_same_alert_twice_deliver_it_once(
    alert_env: dict[str, str], slow_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    with (
        real.celery(real.worker_args(), alert_env, logs[0]),
        real.celery(real.worker_args(), alert_env, logs[1]),
    ):
        real.wait_for(
            lambda: all("ready" in log.read_text() for log in logs),
            "both workers to be ready",
        )
        alerting_budget(thresholds=[80], spent="90", webhook=slow_receiver.url)
        [alert] = budget_alerts_check()  # its on_commit enqueue is the first copy
        assert budget_alert_enqueue(alert.pk)  # a duplicate message
        real.wait_for(
            lambda: (
                sum(
                    "budget_alert_deliver" in line and "succeeded" in line
                    for log in logs
                    for line in log.read_text().splitlines()
                )
                == 2
            ),
            "both copies to be handled",
        )
        time.sleep(0.5)  # a stray second POST would have arrived by now
    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == (AlertStatus.SENT, 1)
    assert len(slow_receiver.posts) == 1
