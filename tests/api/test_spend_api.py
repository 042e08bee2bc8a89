"""GET /api/v1/spend/: usage grouped by one or two dimensions, for a window and
optionally a budget, with the API's error shape for bad queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from routing.models import Budget
from routing.pipeline.periods import budget_period
from routing.services.spend_rollup import spend_rollup
from tests.factories import usage_recorded

pytestmark = pytest.mark.django_db

DAY0 = datetime(2026, 11, 10, tzinfo=UTC)


def spend(client: APIClient, **query: str) -> Any:
    return client.get("/api/v1/spend/", query)


@pytest.fixture
def usage(fleet: Any) -> None:
    usage_recorded(
        at=DAY0 + timedelta(hours=1),
        model="gpt-4o",
        backend="cloud-gpt",
        cost="0.500000",
        estimated="0.400000",
        client="team-a",
    )
    usage_recorded(
        at=DAY0 + timedelta(hours=2),
        model="llama3.1:8b",
        cost="0.000000",
        estimated=None,
        client="team-b",
    )
    usage_recorded(
        at=DAY0 + timedelta(days=1),
        model="gpt-4o",
        backend="cloud-gpt",
        cost="0.250000",
        estimated="0.300000",
        client="team-b",
    )
    spend_rollup()
    usage_recorded(
        at=DAY0 + timedelta(days=1, hours=3),
        model="llama3.1:8b",
        backend="cloud-llama",
        cost="0.125000",
        client="team-a",
    )


def test_spend_by_model_and_day_runs_by_day_with_money_as_numbers(
    api_client: APIClient, usage: None
) -> None:
    response = spend(
        api_client, since="2026-11-10", until="2026-11-12", group_by="model,day"
    )
    assert response.status_code == 200
    assert response.json() == {
        "since": "2026-11-10T00:00:00Z",
        "until": "2026-11-12T00:00:00Z",
        "group_by": ["model", "day"],
        "rows": [
            {
                "model": "gpt-4o",
                "day": "2026-11-10",
                "cost_usd": 0.5,
                "requests": 1,
                "input_tokens": 100,
                "output_tokens": 50,
                "estimated_cost_usd": 0.4,
            },
            {
                "model": "llama3.1:8b",
                "day": "2026-11-10",
                "cost_usd": 0.0,
                "requests": 1,
                "input_tokens": 100,
                "output_tokens": 50,
                "estimated_cost_usd": 0.0,
            },
            {
                "model": "gpt-4o",
                "day": "2026-11-11",
                "cost_usd": 0.25,
                "requests": 1,
                "input_tokens": 100,
                "output_tokens": 50,
                "estimated_cost_usd": 0.3,
            },
            {
                "model": "llama3.1:8b",
                "day": "2026-11-11",
                "cost_usd": 0.125,
                "requests": 1,
                "input_tokens": 100,
                "output_tokens": 50,
                "estimated_cost_usd": 0.012,
            },
        ],
        "total": {
            "cost_usd": 0.875,
            "requests": 4,
            "input_tokens": 400,
            "output_tokens": 200,
            "estimated_cost_usd": 0.712,
        },
    }


def test_spend_by_client_is_sorted_by_cost_and_cut_at_the_window(
    api_client: APIClient, usage: None
) -> None:
    body = spend(
        api_client,
        since="2026-11-10T01:30:00Z",
        until="2026-11-11T04:30:00+01:00",
        group_by="client",
    ).json()
    assert [(r["client"], r["cost_usd"], r["requests"]) for r in body["rows"]] == [
        ("team-b", 0.25, 2),
        ("team-a", 0.125, 1),
    ]
    assert body["until"] == "2026-11-11T03:30:00Z"


def test_a_budget_limits_the_report_to_the_usage_it_governs(
    api_client: APIClient, usage: None
) -> None:
    Budget.objects.create(name="cloud", scope={"zones": ["cloud"]})
    body = spend(
        api_client,
        since="2026-11-01",
        until="2026-12-01",
        group_by="backend",
        budget="cloud",
    ).json()
    assert [(r["backend"], r["cost_usd"]) for r in body["rows"]] == [
        ("cloud-gpt", 0.75),
        ("cloud-llama", 0.125),
    ]
    assert body["total"]["requests"] == 3


def test_by_default_it_is_global_s_current_period_grouped_by_model(
    api_client: APIClient, fleet: Any
) -> None:
    now = timezone.now()
    usage_recorded(at=now, model="gpt-4o", cost="1.5")
    usage_recorded(at=now - timedelta(days=40), model="gpt-4o", cost="7")
    start, end = budget_period(now.date(), Budget.objects.get(name="global").reset_day)
    body = spend(api_client).json()
    assert (body["since"], body["until"], body["group_by"]) == (
        f"{start}T00:00:00Z",
        f"{end}T00:00:00Z",
        ["model"],
    )
    assert [(r["model"], r["cost_usd"]) for r in body["rows"]] == [("gpt-4o", 1.5)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"group_by": "team"}, "group_by"),
        ({"group_by": "model,day,client"}, "group_by"),
        ({"group_by": "model,model"}, "group_by"),
        ({"since": "2026-11-12", "until": "2026-11-10"}, "until"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2026-02-30"}, "until"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_field(
    api_client: APIClient, query: dict[str, str], field: str
) -> None:
    response = spend(api_client, **query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == [field]


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("9999-12-31T10:00:00Z", "9999-12-31T11:00:00Z"),
        ("0001-01-01", "0001-01-02T05:00:00"),
        ("2026-11-10T05:00:00Z", "2026-11-10T05:00:00Z"),
    ],
)
def test_a_window_at_the_ends_of_time_or_empty_has_no_rows(
    api_client: APIClient, usage: None, since: str, until: str
) -> None:
    response = spend(api_client, since=since, until=until, group_by="day,zone")
    assert response.status_code == 200
    assert response.json()["rows"] == []
    assert response.json()["total"]["requests"] == 0


def test_an_unknown_budget_is_a_404_naming_the_field(api_client: APIClient) -> None:
    response = spend(api_client, budget="nope")
    assert response.status_code == 404
    assert response.json()["error"]["fields"] == {
        "budget": ["No budget has this name."]
    }


def test_it_needs_a_key_or_a_login(client: Any, operator: Any) -> None:
    assert client.get("/api/v1/spend/").status_code == 401
    client.force_login(operator)
    assert client.get("/api/v1/spend/").status_code == 200
