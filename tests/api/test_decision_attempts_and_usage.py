"""GET /api/v1/decisions/ shows a proxied request's attempts and real usage, and
reads the usage of a whole page in one query."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from routing.models import RoutingDecision, UsageReport
from tests.factories import RoutingDecisionFactory, proxy_attempts

pytestmark = pytest.mark.django_db

ATTEMPTS = proxy_attempts(served_ttft_ms=95.5)


def proxied(**fields: Any) -> RoutingDecision:
    """A routed decision the proxy served, with its attempts and usage rows."""
    decision = RoutingDecisionFactory(
        backend_name="local-gpu",
        estimated_cost_usd=Decimal("0.004"),
        attempts=ATTEMPTS,
        **fields,
    )
    UsageReport.objects.create(
        decision_id=decision.pk,
        input_tokens=1234,
        output_tokens=56,
        cost_usd=Decimal("0.0026"),
        source="upstream",
        latency_ms=812.0,
        ttft_ms=95.5,
        outcome="ok",
    )
    return decision


def test_a_proxied_decision_shows_its_attempts_and_usage(
    api_client: APIClient,
) -> None:
    decision = proxied()
    detail = api_client.get(f"/api/v1/decisions/{decision.pk}/").json()
    assert detail["attempts"] == ATTEMPTS
    assert detail["usage"] == {
        "input_tokens": 1234,
        "output_tokens": 56,
        "cost_usd": 0.0026,
        "source": "upstream",
    }
    assert detail["estimated_cost_usd"] == 0.004
    listed = api_client.get("/api/v1/decisions/").json()["results"]
    assert [(row["attempts"], row["usage"]) for row in listed] == [
        (detail["attempts"], detail["usage"])
    ]


def test_a_decision_only_call_has_no_attempts_and_null_usage_until_reported(
    api_client: APIClient,
) -> None:
    decision = RoutingDecisionFactory()
    detail = api_client.get(f"/api/v1/decisions/{decision.pk}/").json()
    assert (detail["attempts"], detail["usage"]) == ([], None)
    UsageReport.objects.create(
        decision_id=decision.pk,
        input_tokens=10,
        output_tokens=20,
        cost_usd=Decimal(0),
        source="reported",
    )
    detail = api_client.get(f"/api/v1/decisions/{decision.pk}/").json()
    assert detail["usage"] == {
        "input_tokens": 10,
        "output_tokens": 20,
        "cost_usd": 0.0,
        "source": "reported",
    }


def test_each_decision_of_a_page_gets_its_own_usage(api_client: APIClient) -> None:
    with_usage = proxied()
    without = RoutingDecisionFactory()
    listed = api_client.get("/api/v1/decisions/").json()["results"]
    usage = {row["decision_id"]: row["usage"] for row in listed}
    assert usage[str(without.pk)] is None
    assert usage[str(with_usage.pk)]["input_tokens"] == 1234


def list_queries(api_client: APIClient) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = api_client.get("/api/v1/decisions/?page_size=20")
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def test_a_page_reads_usage_in_one_query_however_many_decisions_it_holds(
    api_client: APIClient,
) -> None:
    proxied()
    list_queries(api_client)  # warm the API key cache
    one = list_queries(api_client)
    for _ in range(5):
        proxied()
    six = list_queries(api_client)
    assert len(six) == len(one)
    assert sum("usagereport" in sql.lower() for sql in six) == 1
