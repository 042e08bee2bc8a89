"""Concurrent route calls cannot together overspend a hard limit (PostgreSQL)."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from routing.models import Budget, LedgerEntry, RoutingDecision
from routing.services.api_keys import api_key_issue
from tests.fleet_rows import chat, set_budget

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CALLS = 64
ROOM_FOR = 10
ESTIMATE = Decimal("0.0125")  # 1000 tokens in at $0.0025/1k + 1000 out at $0.01/1k


def test_sixty_four_concurrent_calls_reserve_at_most_the_limit(
    postgres: None, fleet: Any
) -> None:
    set_budget(str(ESTIMATE * ROOM_FOR), hard_limit_action="block_cloud")
    raw = api_key_issue(name="racer")[1]
    body = chat("gpt-4o", text="x" * 4000, max_tokens=1000)
    barrier = threading.Barrier(CALLS)
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        try:
            barrier.wait(timeout=30)
            response = client.post("/api/v1/route", body, format="json")
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(CALLS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(statuses) == CALLS
    routed = RoutingDecision.objects.filter(outcome="route", backend_name="cloud-gpt")
    budget = Budget.objects.get(name="global")
    assert RoutingDecision.objects.count() == CALLS
    assert routed.count() == ROOM_FOR
    assert statuses.count(200) == ROOM_FOR
    assert statuses.count(503) == CALLS - ROOM_FOR
    assert budget.spent_usd + budget.reserved_usd <= budget.monthly_limit_usd
    assert LedgerEntry.objects.filter(kind="reserve").count() == ROOM_FOR
