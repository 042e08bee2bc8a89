"""A deployment that skipped collectstatic or migrate answers a 503 naming the
step, never a bare 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client

from routing.deployment import NOT_MIGRATED, STATIC_NOT_COLLECTED, skipped_step
from routing.models import Alias

pytestmark = pytest.mark.django_db


def table_missing(table: str) -> None:
    """As if its migration had not run (renamed within the test's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_unmigrated")


@pytest.fixture
def static_not_collected(settings: Any, tmp_path: Path) -> None:
    """Production's manifest storage over an empty STATIC_ROOT."""
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STATIC_ROOT.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        },
    }


def test_an_html_page_without_collected_static_files_is_a_503_naming_collectstatic(
    client: Client, static_not_collected: None
) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 503
    assert "collectstatic" in response.content.decode()
    assert "scripts/serve web" in response.content.decode()


def test_the_explorer_without_collected_static_files_is_a_503_too(
    admin_client_as_operator: Client, static_not_collected: None
) -> None:
    response = admin_client_as_operator.get("/")
    assert response.status_code == 503
    assert STATIC_NOT_COLLECTED in response.content.decode()


def test_a_page_whose_table_is_missing_is_a_503_naming_migrate(
    admin_client_as_operator: Client,
) -> None:
    table_missing(Alias._meta.db_table)
    response = admin_client_as_operator.get("/admin/routing/alias/")
    assert response.status_code == 503
    assert NOT_MIGRATED in response.content.decode()


def test_an_api_call_whose_table_is_missing_is_a_json_503_naming_migrate(
    api_client: Any,
) -> None:
    table_missing(Alias._meta.db_table)
    response = api_client.get("/api/v1/aliases/")
    assert response.status_code == 503
    assert response.json()["error"] == {
        "type": "service_unavailable",
        "message": NOT_MIGRATED,
        "fields": {},
    }


def test_a_missing_table_on_this_database_is_recognised_as_not_migrated() -> None:
    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        connection.cursor().execute("SELECT 1 FROM nexus_no_such_table")
    assert skipped_step(caught.value) == NOT_MIGRATED


def test_other_errors_are_not_taken_for_a_skipped_step() -> None:
    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        connection.cursor().execute("SELECT nonsense FROM")
    assert skipped_step(caught.value) is None
    assert skipped_step(ValueError("Missing a thing")) is None
