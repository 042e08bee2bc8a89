"""``GET /api/v1/budgets/{name}/alerts/`` lists a budget's alerts, newest first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from routing.models import AlertStatus, BudgetAlert
from routing.services.alerts import budget_alerts_check
from tests.budget_alerts import alerting_budget

pytestmark = pytest.mark.django_db

FIELDS = {
    "threshold_percent",
    "period_start",
    "period_end",
    "status",
    "http_status",
    "attempts",
    "error",
    "spent_usd",
    "reserved_usd",
    "limit_usd",
    "exhausted_on",
    "created_at",
    "delivered_at",
}


def test_a_budgets_alerts_are_listed_newest_first_with_their_delivery(
    api_client: APIClient,
) -> None:
    budget = alerting_budget(thresholds=[50, 80, 100], spent="85.5", reserved="1")
    alerting_budget(name="other", thresholds=[50], spent="90")
    early, late = budget_alerts_check(budget_ids=[budget.pk])
    BudgetAlert.objects.filter(pk=early.pk).update(
        created_at=timezone.now() - timedelta(minutes=5),
        status=AlertStatus.FAILED,
        http_status=500,
        attempts=5,
        error="HTTP 500: boom",
    )
    response = api_client.get("/api/v1/budgets/team-a/alerts/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [row["threshold_percent"] for row in body] == [80, 50]
    assert all(set(row) == FIELDS for row in body)
    assert body[0] == {
        "threshold_percent": 80,
        "period_start": budget.period_start.isoformat(),
        "period_end": budget.period_end.isoformat(),
        "status": "logged",
        "http_status": None,
        "attempts": 0,
        "error": "",
        "spent_usd": 85.5,
        "reserved_usd": 1.0,
        "limit_usd": 100.0,
        "exhausted_on": None,
        "created_at": body[0]["created_at"],
        "delivered_at": None,
    }
    assert (body[1]["status"], body[1]["http_status"], body[1]["attempts"]) == (
        "failed",
        500,
        5,
    )
    assert late.pk != early.pk


def test_a_budget_without_alerts_lists_none(api_client: APIClient) -> None:
    alerting_budget(spent="1")
    response = api_client.get("/api/v1/budgets/team-a/alerts/")
    assert (response.status_code, response.json()) == (200, [])


def test_an_unknown_budget_is_a_json_404(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/budgets/nope/alerts/")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_alerts_need_authentication() -> None:
    response = APIClient().get("/api/v1/budgets/global/alerts/")
    assert response.status_code == 401


def test_alerts_cannot_be_written(admin_api_client: APIClient) -> None:
    alerting_budget(spent="1")
    response = admin_api_client.post("/api/v1/budgets/team-a/alerts/", {}, "json")
    assert response.status_code == 405


def test_the_alerts_route_is_in_the_schema(api_client: APIClient) -> None:
    schema: Any = api_client.get("/api/v1/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/budgets/{name}/alerts/"]["get"]
    items = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert items["type"] == "array"
    ref = items["items"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == FIELDS
