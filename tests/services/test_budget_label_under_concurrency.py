"""Concurrent calls are labelled by the budget figures their reservation saw."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from routing.models import Budget, RoutingDecision
from routing.services.api_keys import api_key_issue
from tests.fleet_rows import chat, set_budget

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CALLS = 32
ESTIMATE = Decimal("0.0125")  # 1000 tokens in at $0.0025/1k + 1000 out at $0.01/1k
ROOM_FOR = 20  # the hard limit
BELOW_SOFT = 9  # soft limit at 50% = 10 estimates; the 10th reaches it


def test_no_more_concurrent_calls_are_labelled_normal_than_fit_below_the_soft_limit(
    postgres: None, fleet: Any
) -> None:
    set_budget(
        str(ESTIMATE * ROOM_FOR), hard_limit_action="block_cloud", soft_limit_percent=50
    )
    raw = api_key_issue(name="racer")[1]
    body = chat("gpt-4o", text="x" * 4000, max_tokens=1000)
    barrier = threading.Barrier(CALLS)
    answered: dict[str, str] = {}
    lock = threading.Lock()

    def call() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        try:
            barrier.wait(timeout=30)
            response = client.post("/api/v1/route", body, format="json")
            data = response.json()
            if response.status_code == 200:
                with lock:
                    answered[data["decision_id"]] = data["annotations"]["budget_status"]
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(CALLS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    labels = Counter(
        d.annotations.get("budget_status") for d in RoutingDecision.objects.all()
    )
    assert labels["normal"] <= BELOW_SOFT
    routed = RoutingDecision.objects.filter(outcome="route", backend_name="cloud-gpt")
    stored = {str(d.pk): d.annotations["budget_status"] for d in routed}
    assert len(stored) == ROOM_FOR
    # Reservations take turns on the budget row: the k-th leaves k estimates used.
    assert Counter(stored.values()) == {
        "normal": BELOW_SOFT,
        "soft_limit": ROOM_FOR - BELOW_SOFT - 1,
        "hard_limit": 1,
    }
    assert answered == stored  # the client is told what was recorded


@pytest.mark.parametrize(
    ("spent", "label"),
    [("0.1", "normal"), ("0.115", "soft_limit"), ("0.2375", "hard_limit")],
)
def test_a_call_is_labelled_with_the_budget_status_once_its_reservation_counts(
    db: None, fleet: Any, spent: str, label: str
) -> None:
    """Soft limit 0.125, hard 0.25; the call adds 0.0125. The pipeline reads
    normal, normal, soft_limit on the figures before the call."""
    set_budget(str(ESTIMATE * ROOM_FOR), soft_limit_percent=50)
    Budget.objects.filter(name="global").update(spent_usd=Decimal(spent) / 2)
    Budget.objects.filter(name="global").update(reserved_usd=Decimal(spent) / 2)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_issue(name='one')[1]}")
    body = chat("gpt-4o", text="x" * 4000, max_tokens=1000)
    response = client.post("/api/v1/route", body, format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["annotations"]["budget_status"] == label
    stored = RoutingDecision.objects.get(pk=data["decision_id"])
    assert stored.annotations["budget_status"] == label
