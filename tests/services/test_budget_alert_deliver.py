"""An alert's webhook is POSTed until a 2xx, and one 2xx is all a receiver gets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections, transaction

from routing import tasks
from routing.models import AlertStatus, Budget, BudgetAlert
from routing.services.alerts import (
    AlertDelivery,
    alert_retry_delay_s,
    budget_alert_deliver,
    budget_alerts_check,
)
from tests.budget_alerts import alerting_budget
from tests.http_servers import WebhookReceiver

pytestmark = pytest.mark.django_db

PAYLOAD_KEYS = {
    "budget",
    "threshold_percent",
    "spent_usd",
    "reserved_usd",
    "limit_usd",
    "period_start",
    "period_end",
    "exhausted_on",
}


@pytest.fixture(autouse=True)
def _quick_retries(settings: Any) -> None:
    settings.NEXUS_BUDGET_ALERT_RETRY_BACKOFF_S = 0.01
    settings.NEXUS_BUDGET_ALERT_MAX_ATTEMPTS = 5
    settings.NEXUS_BUDGET_ALERT_TIMEOUT_S = 2.0


def receiver_of(**kwargs: Any) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(**kwargs).start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from receiver_of()


@pytest.fixture
def flaky_receiver() -> Iterator[WebhookReceiver]:
    """Answers 500 twice, then 200."""
    yield from receiver_of(script=[500, 500])


@pytest.fixture
def broken_receiver() -> Iterator[WebhookReceiver]:
    yield from receiver_of(status=500)


def pending_alert(url: str, **figures: str) -> BudgetAlert:
    alerting_budget(thresholds=[80], webhook=url, **{"spent": "85.5", **figures})
    [alert] = budget_alerts_check()
    assert alert.status == AlertStatus.PENDING
    return alert


def test_a_receiver_failing_twice_gets_one_delivery_on_the_third_attempt(
    flaky_receiver: WebhookReceiver,
) -> None:
    alert = pending_alert(flaky_receiver.url, reserved="1.25")
    outcome = tasks.budget_alert_deliver.apply(args=[alert.pk])
    assert outcome.successful(), outcome.traceback
    alert.refresh_from_db()
    assert (alert.status, alert.attempts, alert.http_status, alert.error) == (
        AlertStatus.SENT,
        3,
        200,
        "",
    )
    assert alert.delivered_at is not None
    assert [post.status for post in flaky_receiver.posts] == [500, 500, 200]
    [delivered] = flaky_receiver.delivered
    assert delivered.json() == {
        "budget": "team-a",
        "threshold_percent": 80,
        "spent_usd": 85.5,
        "reserved_usd": 1.25,
        "limit_usd": 100.0,
        "period_start": alert.period_start.isoformat(),
        "period_end": alert.period_end.isoformat(),
        "exhausted_on": None,
    }
    assert delivered.path == "/hooks/budget"
    assert delivered.headers["Content-Type"] == "application/json"
    assert delivered.headers["Idempotency-Key"] == f"nexus-budget-alert-{alert.pk}"
    assert len({post.body for post in flaky_receiver.posts}) == 1  # same body each time


def test_a_receiver_that_always_fails_leaves_the_alert_failed_with_its_status(
    broken_receiver: WebhookReceiver, settings: Any
) -> None:
    settings.NEXUS_BUDGET_ALERT_MAX_ATTEMPTS = 4
    alert = pending_alert(broken_receiver.url)
    tasks.budget_alert_deliver.apply(args=[alert.pk])
    alert.refresh_from_db()
    assert (alert.status, alert.attempts, alert.http_status) == (
        AlertStatus.FAILED,
        4,
        500,
    )
    assert alert.error.startswith("HTTP 500")
    assert alert.delivered_at is None
    assert len(broken_receiver.posts) == 4
    assert broken_receiver.delivered == []


def test_an_unreachable_webhook_records_the_transport_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    alert = pending_alert(f"http://127.0.0.1:{port}/hook")
    delivery = budget_alert_deliver(alert_id=alert.pk)
    alert.refresh_from_db()
    assert delivery == AlertDelivery(
        alert.pk,
        AlertStatus.PENDING,
        posted=True,
        retry_in_s=alert_retry_delay_s(1),
    )
    assert (alert.status, alert.attempts, alert.http_status) == (
        AlertStatus.PENDING,
        1,
        None,
    )
    assert alert.error.startswith("ConnectError")


def test_a_sent_alert_is_never_posted_again(receiver: WebhookReceiver) -> None:
    alert = pending_alert(receiver.url)
    assert budget_alert_deliver(alert_id=alert.pk).status == AlertStatus.SENT
    # The same message delivered twice, or a late copy from the periodic check.
    again = tasks.budget_alert_deliver.apply(args=[alert.pk])
    assert again.get() == AlertStatus.SENT
    assert budget_alert_deliver(alert_id=alert.pk) == AlertDelivery(
        alert.pk, AlertStatus.SENT
    )
    assert len(receiver.posts) == 1
    alert.refresh_from_db()
    assert alert.attempts == 1


def test_a_failed_alert_is_not_retried_by_a_late_message(
    broken_receiver: WebhookReceiver, settings: Any
) -> None:
    settings.NEXUS_BUDGET_ALERT_MAX_ATTEMPTS = 1
    alert = pending_alert(broken_receiver.url)
    assert budget_alert_deliver(alert_id=alert.pk).status == AlertStatus.FAILED
    assert budget_alert_deliver(alert_id=alert.pk).posted is False
    assert len(broken_receiver.posts) == 1


def test_a_logged_alert_posts_nothing(receiver: WebhookReceiver) -> None:
    alerting_budget(thresholds=[80], spent="90")
    [alert] = budget_alerts_check()
    assert budget_alert_deliver(alert_id=alert.pk) == AlertDelivery(
        alert.pk, AlertStatus.LOGGED
    )
    assert receiver.posts == []


def test_a_deleted_alert_is_missing() -> None:
    assert budget_alert_deliver(alert_id=987654).status == "missing"


def test_the_retry_delay_doubles_up_to_five_minutes(settings: Any) -> None:
    settings.NEXUS_BUDGET_ALERT_RETRY_BACKOFF_S = 2
    assert [alert_retry_delay_s(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert alert_retry_delay_s(20) == 300


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_delivering_the_same_alert_post_it_once(
    postgres: None, receiver: WebhookReceiver
) -> None:
    alert = pending_alert(receiver.url)
    receiver.delay_s = 0.5  # both deliveries overlap while the first POST waits
    barrier = threading.Barrier(2)
    results: list[AlertDelivery] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(budget_alert_deliver(alert_id=alert.pk))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors
    # The second finds the row locked ("busy"), or, if it came late, "sent".
    assert {r.status for r in results} <= {"busy", "sent"}
    assert [r.posted for r in results].count(True) == 1
    assert len(receiver.posts) == 1
    alert.refresh_from_db()
    assert (alert.status, alert.attempts) == (AlertStatus.SENT, 1)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_delivery_in_progress_does_not_lock_the_budget(
    postgres: None, receiver: WebhookReceiver
) -> None:
    alert = pending_alert(receiver.url)
    receiver.delay_s = 1.0
    worker = threading.Thread(
        target=lambda: (
            budget_alert_deliver(alert_id=alert.pk),
            connections.close_all(),
        )
    )
    worker.start()
    try:
        assert receiver.arrived.wait(timeout=10)
        # What a reservation does to the budget row while the POST is answered.
        with transaction.atomic():
            locked = Budget.objects.select_for_update(nowait=True).filter(
                pk=alert.budget_id
            )
            assert len(locked) == 1
    finally:
        worker.join(timeout=20)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.SENT
