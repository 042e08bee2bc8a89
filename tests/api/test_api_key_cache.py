"""The revoked-key window: API key lookups are cached per process for
``NEXUS_API_KEY_CACHE_SECONDS``; a key revoked elsewhere works at most that long."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.models import ApiKey
from routing.services.api_keys import api_key_issue

pytestmark = pytest.mark.django_db


class Clock:
    """``time.monotonic`` under the test's control."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("routing.api.auth.time.monotonic", fake)
    return fake


def keyed_client() -> tuple[ApiKey, APIClient]:
    key, raw = api_key_issue(name="svc")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return key, client


def revoke_elsewhere(key: ApiKey) -> None:
    """As another process (or the database shell) would: no signal reaches us."""
    ApiKey.objects.filter(pk=key.pk).update(is_active=False)


def test_a_key_revoked_elsewhere_works_until_the_window_passes_then_fails(
    settings: Any, clock: Clock
) -> None:
    settings.NEXUS_API_KEY_CACHE_SECONDS = 5
    key, client = keyed_client()
    assert client.get("/api/v1/zones/").status_code == 200
    revoke_elsewhere(key)
    clock.now += 4.9
    assert client.get("/api/v1/zones/").status_code == 200
    clock.now += 0.1
    assert client.get("/api/v1/zones/").status_code == 401


def test_the_window_is_the_nexus_api_key_cache_seconds_setting(
    settings: Any, clock: Clock
) -> None:
    settings.NEXUS_API_KEY_CACHE_SECONDS = 2
    key, client = keyed_client()
    assert client.get("/api/v1/zones/").status_code == 200
    revoke_elsewhere(key)
    clock.now += 1.9
    assert client.get("/api/v1/zones/").status_code == 200
    clock.now += 0.1
    assert client.get("/api/v1/zones/").status_code == 401


def test_a_zero_window_looks_the_key_up_on_every_request(
    settings: Any, clock: Clock
) -> None:
    settings.NEXUS_API_KEY_CACHE_SECONDS = 0
    key, client = keyed_client()
    assert client.get("/api/v1/zones/").status_code == 200
    revoke_elsewhere(key)
    assert client.get("/api/v1/zones/").status_code == 401


def test_revoking_a_key_in_the_admin_stops_it_at_once_in_that_process(
    settings: Any, clock: Clock, admin_client_as_operator: Any
) -> None:
    settings.NEXUS_API_KEY_CACHE_SECONDS = 5
    key, client = keyed_client()
    assert client.get("/api/v1/zones/").status_code == 200
    response = admin_client_as_operator.post(
        f"/admin/routing/apikey/{key.pk}/change/",
        {"name": "svc", "_save": "Save"},  # is_active unticked
    )
    assert response.status_code == 302
    assert not ApiKey.objects.get(pk=key.pk).is_active
    assert client.get("/api/v1/zones/").status_code == 401
