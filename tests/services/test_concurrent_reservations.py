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
from routing.services.config import config_save
from tests.fleet_rows import chat, set_budget

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CALLS = 64
ROOM_FOR = 10
ESTIMATE = Decimal("0.0125")  # 1000 tokens in at $0.0025/1k + 1000 out at $0.01/1k


def race(keys: list[str]) -> list[int]:
    """``CALLS`` route calls at once, spread over ``keys`` in turn; statuses."""
    body = chat("gpt-4o", text="x" * 4000, max_tokens=1000)
    barrier = threading.Barrier(CALLS)
    statuses: list[int] = []
    lock = threading.Lock()

    def call(raw: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        try:
            barrier.wait(timeout=30)
            response = client.post("/api/v1/route", body, format="json")
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=call, args=(keys[i % len(keys)],)) for i in range(CALLS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return statuses


def test_sixty_four_concurrent_calls_reserve_at_most_the_limit(
    postgres: None, fleet: Any
) -> None:
    set_budget(str(ESTIMATE * ROOM_FOR), hard_limit_action="block_cloud")
    statuses = race([api_key_issue(name="racer")[1]])

    assert len(statuses) == CALLS
    routed = RoutingDecision.objects.filter(outcome="route", backend_name="cloud-gpt")
    budget = Budget.objects.get(name="global")
    assert RoutingDecision.objects.count() == CALLS
    assert routed.count() == ROOM_FOR
    assert statuses.count(200) == ROOM_FOR
    assert statuses.count(503) == CALLS - ROOM_FOR
    assert budget.spent_usd + budget.reserved_usd <= budget.monthly_limit_usd
    assert LedgerEntry.objects.filter(kind="reserve").count() == ROOM_FOR


def test_a_client_budget_and_the_global_one_both_hold_under_two_racing_clients(
    postgres: None, fleet: Any
) -> None:
    """Two clients race; one of them is also governed by a team budget with room
    for fewer calls. Neither budget takes more than its limit."""
    set_budget(str(ESTIMATE * ROOM_FOR), hard_limit_action="block_cloud")
    team = Budget(
        name="team-a",
        monthly_limit_usd=ESTIMATE * 4,
        scope={"clients": ["team-a-app"], "zones": ["cloud"]},
    )
    config_save(instance=team, actor="test")
    statuses = race(
        [api_key_issue(name="team-a-app")[1], api_key_issue(name="team-b-app")[1]]
    )

    assert len(statuses) == CALLS
    assert RoutingDecision.objects.count() == CALLS
    routed = RoutingDecision.objects.filter(outcome="route", backend_name="cloud-gpt")
    by_team_a = routed.filter(client="team-a-app").count()
    assert routed.count() == ROOM_FOR  # team-b-app alone can fill global
    assert by_team_a <= 4
    for name in ("global", "team-a"):
        budget = Budget.objects.get(name=name)
        assert budget.spent_usd + budget.reserved_usd <= budget.monthly_limit_usd
    reserves = LedgerEntry.objects.filter(kind="reserve")
    assert reserves.filter(budget__name="global").count() == ROOM_FOR
    assert reserves.filter(budget__name="team-a").count() == by_team_a
