"""Unknown API keys from one address are refused with 429 after a limit."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

LIMIT = 20  # NEXUS_API_KEY_FAILURES_PER_ADDRESS default


def with_key(key: str, address: str = "10.1.1.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_unknown_keys_from_one_address_get_429_after_the_limit(db: None) -> None:
    statuses = [
        with_key(secrets.token_urlsafe(24)).get("/api/v1/backends/").status_code
        for _ in range(LIMIT + 5)
    ]
    assert statuses == [401] * LIMIT + [429] * 5
    response = with_key(secrets.token_urlsafe(24)).get("/api/v1/backends/")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    error = response.json()["error"]
    assert error["type"] == "rate_limited"
    assert "10.1.1.1" in error["message"]


def test_a_key_in_use_and_another_address_still_work_while_one_address_is_limited(
    api_client: Any,
) -> None:
    valid = api_client._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    assert with_key(valid).get("/api/v1/backends/").status_code == 200
    for _ in range(LIMIT + 1):
        with_key("not-a-key").get("/api/v1/backends/")
    assert with_key("not-a-key").get("/api/v1/backends/").status_code == 429
    assert with_key(valid).get("/api/v1/backends/").status_code == 200
    assert with_key("not-a-key", "10.2.2.2").get("/api/v1/backends/").status_code == 401


def test_valid_keys_cost_no_shared_state_at_all(api_client: Any, settings: Any) -> None:
    settings.NEXUS_REDIS_URL = "redis://127.0.0.1:9/0"  # unusable: any use would show
    from routing import metrics

    failures = metrics.SHARED_STATE_UNAVAILABLE.labels("redis")
    before = failures._value.get()
    for _ in range(5):
        assert api_client.get("/api/v1/backends/").status_code == 200
    assert failures._value.get() == before


def test_a_refused_address_costs_no_database_lookup_per_key(
    django_assert_max_num_queries: Any,
) -> None:
    for _ in range(LIMIT + 1):
        with_key(secrets.token_urlsafe(24)).get("/api/v1/backends/")
    # At most one query: the active keys' hashes, once per cache window.
    with django_assert_max_num_queries(1):
        for _ in range(50):
            response = with_key(secrets.token_urlsafe(24)).get("/api/v1/backends/")
            assert response.status_code == 429


def test_a_valid_key_never_used_here_still_works_from_a_refused_address(
    api_client: Any, settings: Any
) -> None:
    """Even with no key cache at all, a flood of bad keys from an address (or from
    everyone behind one proxy) does not lock valid keys out."""
    settings.NEXUS_API_KEY_CACHE_SECONDS = 0
    valid = api_client._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    for _ in range(LIMIT + 1):
        with_key(secrets.token_urlsafe(24)).get("/api/v1/backends/")
    assert with_key(secrets.token_urlsafe(24)).get("/api/v1/backends/").status_code == (
        429
    )
    assert with_key(valid).get("/api/v1/backends/").status_code == 200
