"""GET /api/v1/decisions/ says which decisions are samples and filters on it."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.fleet_rows import chat

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed(api_client: APIClient, fleet: Any) -> dict[str, list[str]]:
    """Two real calls and five samples, the samples all older than the calls."""
    call_command("generate_decisions", "5", "--days", "2", stdout=StringIO())
    real = [
        api_client.post("/api/v1/route", chat(model), format="json").json()
        for model in ("llama3.1:8b", "missing-model")
    ]
    page = api_client.get("/api/v1/decisions/").json()["results"]
    samples = [row["decision_id"] for row in page if row["sample"]]
    return {"real": [r["decision_id"] for r in reversed(real)], "samples": samples}


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["decision_id"] for row in response.json()["results"]]


def test_each_decision_says_whether_it_is_a_sample(
    api_client: APIClient, mixed: dict[str, list[str]]
) -> None:
    page = api_client.get("/api/v1/decisions/").json()["results"]
    assert [row["sample"] for row in page] == [False, False] + [True] * 5
    real = api_client.get(f"/api/v1/decisions/{mixed['real'][0]}/").json()
    sample = api_client.get(f"/api/v1/decisions/{mixed['samples'][0]}/").json()
    assert (real["sample"], sample["sample"]) == (False, True)


@pytest.mark.parametrize(("value", "kind"), [("true", "samples"), ("false", "real")])
def test_the_sample_filter_keeps_one_kind(
    api_client: APIClient, mixed: dict[str, list[str]], value: str, kind: str
) -> None:
    assert ids(api_client.get(f"/api/v1/decisions/?sample={value}")) == mixed[kind]


def test_the_sample_filter_pages_by_cursor(
    api_client: APIClient, mixed: dict[str, list[str]]
) -> None:
    seen: list[str] = []
    url: str | None = "/api/v1/decisions/?sample=true&page_size=2"
    while url:
        page = api_client.get(url).json()
        seen += [row["decision_id"] for row in page["results"]]
        url = page["next"]
    assert seen == mixed["samples"]


@pytest.mark.parametrize("value", ["yes", "1", "TRUE ", "maybe"])
def test_a_sample_filter_that_is_not_true_or_false_is_a_400(
    api_client: APIClient, fleet: Any, value: str
) -> None:
    response = api_client.get("/api/v1/decisions/", {"sample": value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert "sample" in error["fields"]
