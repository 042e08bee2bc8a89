"""/readyz: 200 when the database (and Redis, when configured) answers; 503 JSON
naming what failed otherwise; exempt from the HTTPS redirect like /healthz."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.test import Client

from tests.api.test_outages_and_error_shape import database_unreachable  # noqa: F401

pytestmark = pytest.mark.django_db


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_readyz_is_ok_when_the_database_answers(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


def test_readyz_is_a_503_naming_the_database_when_it_is_unreachable(
    client: Client,
    database_unreachable: str,  # noqa: F811
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("OperationalError: ")


def test_readyz_is_a_503_naming_redis_when_the_configured_redis_is_down(
    client: Client, settings: Any
) -> None:
    settings.NEXUS_REDIS_URL = f"redis://127.0.0.1:{closed_loopback_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"].startswith("ConnectionError: ")


def test_readyz_is_not_redirected_to_https(client: Client, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/readyz").status_code == 200
    assert client.get("/admin/login/").status_code == 301
