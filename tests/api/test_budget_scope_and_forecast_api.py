"""Budgets in the API: scope and alert settings are writable and validated
(errors name ``scope.<field>``), forecasts are read-only and read in one query
for a list, and a budget created mid-period counts the period so far."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from routing.models import Budget, LedgerEntry
from routing.selectors import budget_forecasts
from tests.factories import LedgerEntryFactory, usage_recorded

pytestmark = pytest.mark.django_db

BUDGETS = "/api/v1/budgets/"


def create(client: APIClient, **fields: Any) -> Any:
    return client.post(BUDGETS, {"name": "team-a", **fields}, format="json")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"scope": {"zones": ["moon"]}}, "scope.zones"),
        ({"scope": {"backends": ["no-such-backend"]}}, "scope.backends"),
        ({"scope": {"models": ["gpt 4*"]}}, "scope.models"),
        ({"scope": {"teams": ["a"]}}, "scope"),
        ({"scope": {"clients": []}}, "scope.clients"),
        ({"alert_thresholds": [80, "high"]}, "alert_thresholds"),
        ({"alert_thresholds": [0]}, "alert_thresholds"),
        ({"alert_webhook_url": "not a url"}, "alert_webhook_url"),
    ],
)
def test_a_bad_scope_or_alert_setting_is_a_400_naming_it(
    admin_api_client: APIClient, fleet: Any, fields: dict[str, Any], named: str
) -> None:
    response = create(admin_api_client, **fields)
    assert response.status_code == 400, response.json()
    assert list(response.json()["error"]["fields"]) == [named]
    assert not Budget.objects.filter(name="team-a").exists()


def test_scope_and_alert_settings_are_written_and_read_back(
    admin_api_client: APIClient, fleet: Any
) -> None:
    response = create(
        admin_api_client,
        monthly_limit_usd="100",
        scope={"zones": ["cloud"], "models": ["gpt-*"]},
        alert_thresholds=[100, 50],
        alert_webhook_url="http://127.0.0.1:9/hook",
    )
    assert response.status_code == 201, response.json()
    body = admin_api_client.get(f"{BUDGETS}team-a/").json()
    assert body["scope"] == {"models": ["gpt-*"], "zones": ["cloud"]}
    assert body["alert_thresholds"] == [50, 100]
    assert body["alert_webhook_url"] == "http://127.0.0.1:9/hook"


def test_a_budget_created_mid_period_counts_the_governed_spend_so_far(
    admin_api_client: APIClient, fleet: Any
) -> None:
    now = timezone.now()
    usage_recorded(at=now, client="team-a-app", backend="cloud-gpt", cost="0.30")
    usage_recorded(at=now, client="team-a-app", backend="local-gpu", cost="0.05")
    usage_recorded(at=now, client="team-b", backend="cloud-gpt", cost="2.00")
    response = create(
        admin_api_client,
        monthly_limit_usd="10",
        scope={"clients": ["team-a-app", "team-a-batch"]},
    )
    assert response.status_code == 201, response.json()
    assert response.json()["spent_usd"] == 0.35
    assert Budget.objects.get(name="team-a").spent_usd == Decimal("0.35")


def test_forecasts_are_read_only_and_match_the_selector(
    admin_api_client: APIClient,
) -> None:
    budget = Budget.objects.get(name="global")
    Budget.objects.filter(pk=budget.pk).update(
        monthly_limit_usd=Decimal(100), spent_usd=Decimal(70)
    )
    LedgerEntryFactory(budget=budget, kind="spend", amount_usd=Decimal(14))
    budget.refresh_from_db()
    forecast = budget_forecasts([budget])[budget.pk]
    assert forecast.burn_rate_usd_per_day > 0
    response = admin_api_client.patch(
        f"{BUDGETS}global/",
        {"burn_rate_usd_per_day": 1, "exhausted_on": "2000-01-01"},
        format="json",
    )
    assert response.status_code == 200
    body = admin_api_client.get(f"{BUDGETS}global/").json()
    assert body["burn_rate_usd_per_day"] == float(forecast.burn_rate_usd_per_day)
    assert body["projected_period_spend_usd"] == float(
        forecast.projected_period_spend_usd
    )
    assert body["exhausted_on"] == (
        forecast.exhausted_on.isoformat() if forecast.exhausted_on else None
    )


def test_a_list_of_budgets_reads_the_ledger_once(admin_api_client: APIClient) -> None:
    def ledger_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_api_client.get(BUDGETS).status_code == 200
        table = LedgerEntry._meta.db_table
        return sum(table in q["sql"] for q in queries.captured_queries)

    one = ledger_queries()
    for name in ("a", "b", "c", "d"):
        Budget.objects.create(name=name, reset_day=1)
    assert one == ledger_queries() == 1
    assert len(admin_api_client.get(BUDGETS).json()) == 5
