"""/metrics speaks Prometheus; /healthz answers load balancers."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.fleet_rows import chat, set_budget

pytestmark = pytest.mark.django_db


def metric_value(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_decisions_and_exclusions_are_counted(
    api_client: APIClient, fleet: Any
) -> None:
    before = Client().get("/metrics").content.decode()
    api_client.post(
        "/api/v1/route", chat("gpt-4o", nexus={"privacy": "restricted"}), format="json"
    )
    after = Client().get("/metrics").content.decode()
    key = 'nexus_decisions_total{outcome="reject"}'
    assert metric_value(after, key) == metric_value(before, key) + 1
    key = 'nexus_exclusions_total{reconciler="privacy"}'
    assert metric_value(after, key) == metric_value(before, key) + 1
    assert "nexus_pipeline_duration_seconds_bucket" in after
    assert "nexus_route_request_duration_seconds_count" in after


def test_budget_spend_and_status_are_exported(fleet: Any) -> None:
    set_budget("50")
    text = Client().get("/metrics").content.decode()
    assert metric_value(text, 'nexus_budget_limit_usd{budget="global"}') == 50.0
    assert (
        metric_value(text, 'nexus_budget_status{budget="global",status="normal"}')
        == 1.0
    )


def test_healthz_is_ok_without_a_login(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
