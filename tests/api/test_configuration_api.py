"""Configuration CRUD over the API: admin keys write, every key reads, errors are JSON."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.models import AuditEntry, Backend
from routing.services.config import config_version_current

pytestmark = pytest.mark.django_db

BACKEND = {
    "name": "gpu-box",
    "kind": "vllm",
    "base_url": "http://127.0.0.1:8001",
    "privacy_zone": "local",
    "capability_tier": 4,
    "models": [
        {"name": "llama3.1:70b", "context_window": 131072, "tools": True},
        {"name": "llama3.1:8b", "input_cost_per_1k": 0, "output_cost_per_1k": 0},
    ],
}


def test_an_admin_key_creates_a_backend_with_its_models_audited(
    admin_api_client: APIClient,
) -> None:
    version = config_version_current()
    response = admin_api_client.post("/api/v1/backends/", BACKEND, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["privacy_zone"] == "local"
    assert [m["name"] for m in body["models"]] == ["llama3.1:70b", "llama3.1:8b"]
    assert body["health"] == "unknown"
    assert config_version_current() > version
    assert AuditEntry.objects.filter(
        actor="api-key:ops", object_name="gpu-box"
    ).exists()


def test_updating_models_replaces_the_served_list(admin_api_client: APIClient) -> None:
    admin_api_client.post("/api/v1/backends/", BACKEND, format="json")
    response = admin_api_client.patch(
        "/api/v1/backends/gpu-box/",
        {"models": [{"name": "qwen2.5:14b"}], "priority": 5},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert [m["name"] for m in response.json()["models"]] == ["qwen2.5:14b"]
    assert response.json()["priority"] == 5


def test_an_ordinary_key_reads_but_cannot_write(api_client: APIClient) -> None:
    assert api_client.get("/api/v1/zones/").status_code == 200
    response = api_client.post("/api/v1/zones/", {"name": "eu"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "forbidden"
    assert "admin API key" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer nx_not-a-real-key", "Token abc", "Bearer "],
)
def test_missing_or_bad_keys_get_401_in_the_error_shape(header: str | None) -> None:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/backends/")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"
    assert response.json()["error"]["message"]


def test_a_revoked_key_is_refused(db: None) -> None:
    from routing.models import ApiKey
    from routing.services.api_keys import api_key_issue

    key, raw = api_key_issue(name="old")
    ApiKey.objects.filter(pk=key.pk).update(is_active=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/zones/").status_code == 401


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        (
            {"capability_tier": 9},
            "capability_tier",
            "Capability tier must be between 1 and 5.",
        ),
        ({"priority": -1}, "priority", "Priority must be between 0 and 100."),
        ({"privacy_zone": "mars"}, "privacy_zone", "does not exist"),
        ({"name": "GPU Box"}, "name", "lower-case letters"),
        (
            {"models": [{"name": "m", "input_cost_per_1k": -1}]},
            "models.0.input_cost_per_1k",
            "Input cost per 1k tokens must be 0 or more.",
        ),
    ],
)
def test_bad_backend_values_are_400_with_the_field_named(
    admin_api_client: APIClient, payload: dict[str, Any], field: str, message: str
) -> None:
    response = admin_api_client.post(
        "/api/v1/backends/", BACKEND | payload, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert any(message in text for text in error["fields"][field]), error
    assert field.split(".")[0].split("[")[0] in error["message"]
    assert not Backend.objects.exists()


def test_alias_cycle_is_refused_by_the_api_with_the_admin_message(
    admin_api_client: APIClient,
) -> None:
    admin_api_client.post(
        "/api/v1/aliases/", {"name": "a", "target": "b"}, format="json"
    )
    response = admin_api_client.post(
        "/api/v1/aliases/", {"name": "b", "target": "a"}, format="json"
    )
    assert response.status_code == 400
    assert "Alias cycle: a -> b -> a" in response.json()["error"]["fields"]["target"][0]


def test_policy_with_unknown_privacy_value_is_refused(
    admin_api_client: APIClient,
) -> None:
    response = admin_api_client.post(
        "/api/v1/policies/",
        {"name": "p", "model_pattern": "*", "privacy": "top-secret"},
        format="json",
    )
    assert response.status_code == 400
    assert "Privacy must be" in response.json()["error"]["fields"]["privacy"][0]


def test_budget_read_only_totals_cannot_be_written(admin_api_client: APIClient) -> None:
    response = admin_api_client.patch(
        "/api/v1/budgets/global/",
        {"monthly_limit_usd": 50, "spent_usd": 999},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["monthly_limit_usd"] == 50
    assert body["spent_usd"] == 0
    assert body["status"] == "normal"
    assert body["period_end"] > body["period_start"]


def test_deleting_a_zone_in_use_is_a_409_naming_the_backend(
    admin_api_client: APIClient,
) -> None:
    admin_api_client.post(
        "/api/v1/zones/", {"name": "eu-private", "private": True}, format="json"
    )
    admin_api_client.post(
        "/api/v1/backends/", {**BACKEND, "privacy_zone": "eu-private"}, format="json"
    )
    response = admin_api_client.delete("/api/v1/zones/eu-private/")
    assert response.status_code == 409
    assert "gpu-box" in response.json()["error"]["message"]


def test_model_names_with_dots_and_colons_work_in_urls(
    admin_api_client: APIClient,
) -> None:
    admin_api_client.post(
        "/api/v1/fallbacks/",
        {"model": "llama3.1:70b", "fallbacks": ["llama3.1:8b"]},
        format="json",
    )
    response = admin_api_client.get("/api/v1/fallbacks/llama3.1:70b/")
    assert response.status_code == 200
    assert response.json()["fallbacks"] == ["llama3.1:8b"]


def test_bad_json_is_a_400_in_the_error_shape(admin_api_client: APIClient) -> None:
    response = admin_api_client.post(
        "/api/v1/zones/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"
    assert "not valid JSON" in response.json()["error"]["message"]


def test_unknown_api_paths_answer_json_404(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_creating_a_backend_schedules_a_probe_after_commit(
    admin_api_client: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_api_client.post("/api/v1/backends/", BACKEND, format="json")
    assert response.status_code == 201
    assert len(callbacks) == 1
    assert callbacks[0].args == (Backend.objects.get(name="gpu-box").pk, "gpu-box")


def test_changing_only_the_priority_schedules_no_probe(
    admin_api_client: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    admin_api_client.post("/api/v1/backends/", BACKEND, format="json")
    with django_capture_on_commit_callbacks() as callbacks:
        admin_api_client.patch(
            "/api/v1/backends/gpu-box/", {"priority": 7}, format="json"
        )
    assert callbacks == []


def test_deleting_or_renaming_a_built_in_zone_is_a_409_saying_why(
    admin_api_client: APIClient,
) -> None:
    before = config_version_current()
    response = admin_api_client.delete("/api/v1/zones/cloud/")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["type"] == "conflict"
    assert (
        "zone 'cloud' is built in: routing and the demo depend on it"
        in error["message"]
    )
    assert error["fields"] == {"name": [error["message"]]}
    response = admin_api_client.patch(
        "/api/v1/zones/local/", {"name": "onprem"}, format="json"
    )
    assert response.status_code == 409, response.content
    assert "cannot be renamed" in response.json()["error"]["message"]
    assert config_version_current() == before


def test_the_global_budget_cannot_be_deleted_or_renamed_through_the_api(
    admin_api_client: APIClient,
) -> None:
    assert admin_api_client.delete("/api/v1/budgets/global/").status_code == 409
    response = admin_api_client.patch(
        "/api/v1/budgets/global/", {"name": "all"}, format="json"
    )
    assert response.status_code == 409
    assert "budget 'global' is built in" in response.json()["error"]["message"]


def test_built_in_rows_keep_their_other_fields_editable(
    admin_api_client: APIClient,
) -> None:
    response = admin_api_client.patch(
        "/api/v1/zones/local/", {"description": "Our racks."}, format="json"
    )
    assert response.status_code == 200, response.content
    response = admin_api_client.patch(
        "/api/v1/budgets/global/", {"monthly_limit_usd": "250.00"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["monthly_limit_usd"] == 250.0
