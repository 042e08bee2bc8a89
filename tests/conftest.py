"""Shared fixtures: personas, clients, and the rule that CI never skips a service."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.db import connection

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(available: bool, reason: str) -> None:
    """Skip locally with a visible reason; fail in CI, where every service must exist."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this service: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> None:
    """Fast password hashing; static files without a collectstatic manifest;
    no API key, routing state, decision template or configuration snapshot
    remembered from another test."""
    from routing.adapters import config_snapshot_invalidate
    from routing.api.auth import api_key_cache_clear
    from routing.services.decision_templates import decision_templates_forget
    from routing.services.passive_health import in_flight_forget
    from routing.services.routing import routing_state_forget

    api_key_cache_clear()
    decision_templates_forget()
    routing_state_forget()
    in_flight_forget()
    # A transactional test database starts again from the same versions: a
    # snapshot cached by an earlier test under them would be another fleet.
    config_snapshot_invalidate()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }


@pytest.fixture(autouse=True)
def _fresh_shared_state(settings: Any, tmp_path: Any) -> None:
    """Rate-limit counters in a file of this test's own (no limits carried over)."""
    settings.NEXUS_REDIS_URL = ""
    settings.NEXUS_SHARED_STATE_FILE = tmp_path / "shared-state.sqlite3"


@pytest.fixture
def postgres(db: None) -> None:
    """For tests that only mean something on PostgreSQL (row locks, concurrency)."""
    require_service(
        connection.vendor == "postgresql",
        "needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)",
    )


@pytest.fixture
def operator(django_user_model):  # type: ignore[no-untyped-def]
    """A staff superuser who edits configuration in the admin."""
    return django_user_model.objects.create_user(
        username="olivia", password="pw-olivia", is_staff=True, is_superuser=True
    )


@pytest.fixture
def admin_client_as_operator(client, operator):  # type: ignore[no-untyped-def]
    client.force_login(operator)
    return client


def _issue(name: str, *, is_admin: bool) -> str:
    from routing.services.api_keys import api_key_issue

    return api_key_issue(name=name, is_admin=is_admin)[1]


@pytest.fixture
def api_client(db: None) -> Any:
    """A REST client authenticated with an ordinary (routing-only) API key."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_issue('svc', is_admin=False)}")
    return client


@pytest.fixture
def admin_api_client(db: None) -> Any:
    """A REST client with an admin API key (may write configuration)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_issue('ops', is_admin=True)}")
    return client


@pytest.fixture
def fleet(db: None) -> Any:
    """local-gpu (private, free, tier 3), cloud-llama and cloud-gpt (priced, tier 5)."""
    from tests.fleet_rows import make_fleet

    return make_fleet()
