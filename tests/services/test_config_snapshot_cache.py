"""The routing snapshot is cached per process and rebuilt when configuration changes."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.adapters import config_snapshot, config_snapshot_invalidate
from tests.fleet_rows import chat

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_snapshot_is_reused_until_the_config_version_changes(fleet: Any) -> None:
    config_snapshot_invalidate()
    first = config_snapshot()
    assert config_snapshot() is first
    fleet["local-gpu"].priority = 0
    from routing.services.config import config_save

    config_save(instance=fleet["local-gpu"], actor="test")
    second = config_snapshot()
    assert second is not first
    assert second.version == first.version + 1


def test_an_api_edit_is_seen_by_the_next_route_call(
    admin_api_client: APIClient, fleet: Any
) -> None:
    config_snapshot_invalidate()
    body = chat("llama3.1:8b", nexus={"privacy": "restricted"})
    first = admin_api_client.post("/api/v1/route", body, format="json").json()
    assert first["backend"]["name"] == "local-gpu"
    admin_api_client.patch(
        "/api/v1/backends/local-gpu/", {"enabled": False}, format="json"
    )
    second = admin_api_client.post("/api/v1/route", body, format="json").json()
    assert second["outcome"] == "reject"
