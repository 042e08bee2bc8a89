"""A broker outage never turns a committed backend write into an error."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.models import AuditEntry, Backend
from tests.unreachable_broker import enqueue_failures, unreachable_broker

__all__ = ["unreachable_broker"]  # the fixture, used by name below

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PROBE_TASK = "routing.backend_probe"
BACKEND = {
    "name": "gpu-box",
    "kind": "vllm",
    "base_url": "http://127.0.0.1:8001",
    "privacy_zone": "local",
    "capability_tier": 4,
}


def test_creating_a_backend_with_the_broker_down_answers_201_and_counts_the_failure(
    unreachable_broker: str, admin_api_client: APIClient, caplog: Any
) -> None:
    failures = enqueue_failures(PROBE_TASK)
    with caplog.at_level(logging.WARNING, logger="routing.services.health"):
        response = admin_api_client.post("/api/v1/backends/", BACKEND, format="json")
    assert response.status_code == 201, response.content
    backend = Backend.objects.get(name="gpu-box")
    assert AuditEntry.objects.filter(object_name="gpu-box", action="create").exists()
    assert enqueue_failures(PROBE_TASK) == failures + 1
    warnings = [r for r in caplog.records if r.name == "routing.services.health"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    line = warnings[0].getMessage()
    assert "gpu-box" in line and f"id {backend.pk}" in line
    assert "Connection refused" in line or "111" in line
    assert "\n" not in line


def test_re_enabling_a_backend_with_the_broker_down_answers_200_quickly(
    unreachable_broker: str, admin_api_client: APIClient, caplog: Any
) -> None:
    admin_api_client.post(
        "/api/v1/backends/", {**BACKEND, "enabled": False}, format="json"
    )
    failures = enqueue_failures(PROBE_TASK)
    started = time.monotonic()
    response = admin_api_client.patch(
        "/api/v1/backends/gpu-box/", {"enabled": True}, format="json"
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.content
    assert Backend.objects.get(name="gpu-box").enabled
    assert AuditEntry.objects.filter(
        object_name="gpu-box", field="enabled", new_value="yes"
    ).exists()
    assert enqueue_failures(PROBE_TASK) == failures + 1
    assert "Connection refused" in caplog.text
    # Measured about 5 ms against a refused port; Celery's default publish
    # retries took 0.6 s and retry=False about 6 s.
    assert elapsed < 1.0
