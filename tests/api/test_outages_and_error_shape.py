"""Outages and error shape: 503 with Retry-After while the database is down,
X-Request-ID on every error, one log line per request failed by an outage."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.db import OperationalError
from django.test import RequestFactory
from rest_framework.test import APIClient

from routing.api.exceptions import json_500
from tests.unreachable_database import database_unreachable

__all__ = ["database_unreachable"]  # the fixture, used by name below

pytestmark = pytest.mark.django_db

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def test_an_api_call_during_a_database_outage_is_a_503_with_retry_after(
    api_client: APIClient, database_unreachable: str
) -> None:
    response = api_client.get("/api/v1/zones/", HTTP_X_REQUEST_ID="trace-123")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["X-Request-ID"] == "trace-123"
    error = response.json()["error"]
    assert error["type"] == "service_unavailable"
    assert "Retry in 5 s" in error["message"]


def test_a_route_call_during_a_database_outage_is_a_503_in_the_error_shape(
    api_client: APIClient, database_unreachable: str
) -> None:
    body = {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]}
    response = api_client.post("/api/v1/route", body, format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert GENERATED_ID.match(response["X-Request-ID"])
    assert response.json()["error"]["type"] == "service_unavailable"


def test_an_explorer_page_during_a_database_outage_is_a_short_503_page(
    admin_client_as_operator: Any, database_unreachable: str
) -> None:
    response = admin_client_as_operator.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["X-Request-ID"]
    page = response.content.decode()
    assert "Nexus is unavailable" in page
    assert "Traceback" not in page and "OperationalError" not in page


def test_a_database_outage_outside_any_view_is_still_a_503() -> None:
    request = RequestFactory().get("/api/v1/zones/")
    try:
        raise OperationalError("connection refused")
    except OperationalError:
        response = json_500(request)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


def test_a_request_failed_by_an_outage_logs_one_line_without_a_traceback(
    api_client: APIClient, database_unreachable: str, caplog: Any
) -> None:
    with caplog.at_level(logging.INFO):
        api_client.get("/api/v1/zones/", HTTP_X_REQUEST_ID="trace-9")
        api_client.get("/api/v1/backends/", HTTP_X_REQUEST_ID="trace-10")
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 2
    for record in records:
        assert record.exc_info is None and record.exc_text is None
        assert "\n" not in record.getMessage()
    assert (
        records[0]
        .getMessage()
        .startswith("GET /api/v1/zones/ 503 request_id=trace-9 OperationalError: ")
    )


def test_an_unexpected_500_keeps_its_traceback_in_the_log(caplog: Any) -> None:
    request = RequestFactory().get("/api/v1/zones/")
    try:
        raise RuntimeError("a bug")
    except RuntimeError as exc:
        logging.getLogger("django.request").error(
            "Internal Server Error: %s",
            request.path,
            exc_info=exc,
            extra={"request": request, "status_code": 500},
        )
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is not None
    assert record.getMessage() == "Internal Server Error: /api/v1/zones/"


def _unauthenticated() -> APIClient:
    return APIClient()


@pytest.mark.parametrize(
    ("method", "path", "body", "authenticated", "status"),
    [
        ("get", "/api/v1/nothing-here/", None, True, 404),
        ("get", "/api/v1/zones/", None, False, 401),
        ("post", "/api/v1/usage", "{not json", True, 400),
        ("post", "/api/v1/zones/", '{"name": "x"}', True, 403),
        ("get", "/no-such-page/", None, True, 404),
    ],
)
def test_every_error_response_echoes_the_request_id(
    api_client: APIClient,
    method: str,
    path: str,
    body: str | None,
    authenticated: bool,
    status: int,
) -> None:
    client = api_client if authenticated else _unauthenticated()
    send = getattr(client, method)
    options = {"content_type": "application/json"} if body is not None else {}
    response = send(path, body, HTTP_X_REQUEST_ID="abc-1", **options)
    assert response.status_code == status
    assert response["X-Request-ID"] == "abc-1"
    response = send(path, body, HTTP_X_REQUEST_ID="bad id\twith spaces", **options)
    assert response.status_code == status
    assert GENERATED_ID.match(response["X-Request-ID"])


def test_the_route_call_keeps_its_own_request_id(api_client: APIClient) -> None:
    body = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
    response = api_client.post(
        "/api/v1/route", body, format="json", HTTP_X_REQUEST_ID="route-7"
    )
    assert response["X-Request-ID"] == "route-7"
    assert response.json()["request_id"] == "route-7"


def test_a_header_too_long_is_a_400_in_the_error_shape_naming_it(
    api_client: APIClient,
) -> None:
    response = api_client.get("/api/v1/zones/", HTTP_X_NEXUS_PRIVACY="p" * 9000)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == ["X-Nexus-Privacy"]
    assert "8190 bytes" in error["message"]
    assert GENERATED_ID.match(response["X-Request-ID"])


def test_a_request_id_with_a_trailing_newline_is_replaced_not_a_500(
    api_client: Any,
) -> None:
    response = api_client.get("/api/v1/zones/", HTTP_X_REQUEST_ID="abc\n")
    assert response.status_code == 200
    assert GENERATED_ID.match(response["X-Request-ID"])
