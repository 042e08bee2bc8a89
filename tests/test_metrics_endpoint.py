"""/metrics: the bearer token when NEXUS_METRICS_TOKEN is set, and a JSON 503
(never an HTML page) when the gauges read at scrape time cannot be read."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from routing.metrics import REGISTRY, multiprocess_mode, scrape_registry
from tests.unreachable_database import database_unreachable

__all__ = ["database_unreachable"]  # the fixture, used by name below

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-scrape-token"


@pytest.fixture
def metrics_token(settings: Any) -> str:
    settings.NEXUS_METRICS_TOKEN = TOKEN
    return TOKEN


def test_without_a_token_configured_metrics_are_open(client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"# TYPE nexus_budget_spent_usd gauge" in response.content


def test_with_a_token_configured_a_scrape_without_it_is_a_401_in_json(
    client: Client, metrics_token: str
) -> None:
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["type"] == "unauthorized"
    assert "NEXUS_METRICS_TOKEN" in error["message"]
    assert metrics_token not in response.content.decode()


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer ",
        "Bearer s3cret-scrape-tokén",
    ],
)
def test_a_wrong_token_or_scheme_is_a_401(
    client: Client, metrics_token: str, header: str
) -> None:
    response = client.get("/metrics", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"


def test_the_right_bearer_token_gets_the_metrics(
    client: Client, metrics_token: str
) -> None:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"nexus_budget_spent_usd" in response.content


def test_a_scrape_with_the_database_down_is_a_503_in_the_error_shape(
    client: Client, database_unreachable: str
) -> None:
    response = client.get("/metrics")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "5"
    assert response["X-Request-ID"]
    error = response.json()["error"]
    assert error["type"] == "service_unavailable"
    assert "database" in error["message"]


def test_the_token_is_checked_before_the_database_is_read(
    client: Client, metrics_token: str, database_unreachable: str
) -> None:
    assert client.get("/metrics").status_code == 401


def test_one_process_without_the_variable_reports_its_own_registry() -> None:
    assert not multiprocess_mode()
    assert scrape_registry() is REGISTRY
