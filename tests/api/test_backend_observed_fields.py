"""Observed backend fields (health, load, latency, error rate) written through the
backends API with an admin key are stored like a probe result: seen by routing at
once, not audited, no config version; anyone else gets a 403 naming them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from routing.adapters import config_snapshot_invalidate
from routing.models import AuditEntry, Backend
from routing.selectors import routing_state
from routing.services.backends import backend_save
from routing.services.config import config_version_current
from tests.fleet_rows import chat

pytestmark = pytest.mark.django_db

URL = "/api/v1/backends/cloud-gpt/"
OBSERVED = {
    "health": "loading",
    "loading_eta_ms": 45000,
    "pending_requests": 3,
    "latency_ema_ms": 812.5,
    "error_rate": 0.25,
}


def observed(name: str = "cloud-gpt") -> dict[str, Any]:
    return dict(Backend.objects.filter(name=name).values(*OBSERVED).get())


def state_version() -> int:
    return routing_state().state_version


def test_an_admin_key_stores_observed_fields_and_reads_them_back(
    admin_api_client: APIClient, fleet: Any
) -> None:
    version, state, audited = (
        config_version_current(),
        state_version(),
        AuditEntry.objects.count(),
    )
    response = admin_api_client.patch(URL, OBSERVED, format="json")
    assert response.status_code == 200, response.json()
    assert {k: response.json()[k] for k in OBSERVED} == OBSERVED
    assert {k: admin_api_client.get(URL).json()[k] for k in OBSERVED} == OBSERVED
    assert observed() == OBSERVED
    assert config_version_current() == version
    assert AuditEntry.objects.count() == audited
    assert state_version() == state + 1


def test_writing_the_values_it_already_has_moves_no_version(
    admin_api_client: APIClient, fleet: Any
) -> None:
    admin_api_client.patch(URL, OBSERVED, format="json")
    state = state_version()
    response = admin_api_client.patch(URL, OBSERVED, format="json")
    assert response.status_code == 200, response.json()
    assert state_version() == state


def test_nulls_clear_the_eta_and_the_latency(
    admin_api_client: APIClient, fleet: Any
) -> None:
    admin_api_client.patch(URL, OBSERVED, format="json")
    response = admin_api_client.patch(
        URL,
        {"health": "healthy", "loading_eta_ms": None, "latency_ema_ms": None},
        format="json",
    )
    assert response.status_code == 200, response.json()
    stored = observed()
    assert (stored["health"], stored["loading_eta_ms"], stored["latency_ema_ms"]) == (
        "healthy",
        None,
        None,
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_routing_sees_an_unhealthy_backend_on_its_next_call(
    admin_api_client: APIClient, api_client: APIClient, fleet: Any
) -> None:
    """Outside a test transaction, so the per-process routing snapshot is cached:
    only the probed-state version tells it to rebuild."""
    config_snapshot_invalidate()
    body = chat("gpt-4o", nexus={"dry_run": True})
    before = api_client.post("/api/v1/route", body, format="json")
    assert before.status_code == 200, before.json()
    assert before.json()["backend"]["name"] == "cloud-gpt"
    version = config_version_current()
    response = admin_api_client.patch(URL, {"health": "unhealthy"}, format="json")
    assert response.status_code == 200, response.json()
    after = api_client.post("/api/v1/route", body, format="json")
    assert after.status_code == 503, after.json()
    rejections = after.json()["error"]["rejections"]
    assert [r["backend"] for r in rejections] == ["cloud-gpt"]
    assert "unhealthy" in rejections[0]["reason"]
    assert config_version_current() == version


def test_an_ordinary_key_gets_a_403_naming_the_observed_fields(
    api_client: APIClient, fleet: Any
) -> None:
    response = api_client.patch(
        URL, {"health": "unhealthy", "error_rate": 0.5}, format="json"
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "forbidden"
    assert set(error["fields"]) == {"health", "error_rate"}
    assert "health, error_rate" in error["message"]
    assert "admin API key" in error["message"]
    assert observed()["health"] == "unknown"


def test_an_operator_login_gets_a_403_naming_the_observed_field(
    django_user_model: Any, fleet: Any
) -> None:
    user = django_user_model.objects.create_user(
        username="otto", password="pw", is_staff=True
    )
    user.groups.add(Group.objects.get(name="operators"))
    session = APIClient()
    session.force_login(user)
    response = session.patch(URL, {"priority": 3, "pending_requests": 0}, format="json")
    assert response.status_code == 403
    assert list(response.json()["error"]["fields"]) == ["pending_requests"]
    assert Backend.objects.get(name="cloud-gpt").priority != 3


def test_an_admins_member_without_superuser_gets_a_403_but_a_superuser_writes(
    django_user_model: Any, admin_client_as_operator: Any, fleet: Any
) -> None:
    member = django_user_model.objects.create_user(
        username="ada", password="pw", is_staff=True
    )
    member.groups.add(Group.objects.get(name="admins"))
    session = APIClient()
    session.force_login(member)
    refused = session.patch(URL, {"health": "unhealthy"}, format="json")
    assert refused.status_code == 403
    assert list(refused.json()["error"]["fields"]) == ["health"]
    written = admin_client_as_operator.patch(
        URL, {"health": "unhealthy"}, content_type="application/json"
    )
    assert written.status_code == 200, written.json()
    assert observed()["health"] == "unhealthy"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("health", "sick", "Health must be one of"),
        ("health", None, "may not be null"),
        ("loading_eta_ms", -1, "0 to"),
        ("loading_eta_ms", 2**31, "0 to 2147483647"),
        ("loading_eta_ms", 1.5, "valid integer"),
        ("pending_requests", -2, "0 to"),
        ("pending_requests", None, "may not be null"),
        ("pending_requests", "3e2", "valid integer"),
        ("latency_ema_ms", -0.1, "0 or more"),
        ("latency_ema_ms", "fast", "valid number"),
        ("error_rate", 1.5, "between 0 and 1"),
        ("error_rate", -0.01, "between 0 and 1"),
        ("error_rate", True, "valid number"),
        ("error_rate", None, "may not be null"),
    ],
)
def test_a_bad_observed_value_is_a_400_naming_the_field(
    admin_api_client: APIClient, fleet: Any, field: str, value: Any, message: str
) -> None:
    before, state = observed(), state_version()
    response = admin_api_client.patch(URL, {field: value}, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == [field]
    assert message in error["fields"][field][0]
    assert field in error["message"]
    assert (observed(), state_version()) == (before, state)


def test_every_bad_observed_field_is_named_in_one_400(
    admin_api_client: APIClient, fleet: Any
) -> None:
    bad = {
        "health": "sick",
        "loading_eta_ms": -1,
        "pending_requests": -2,
        "latency_ema_ms": -5,
        "error_rate": 1.5,
    }
    response = admin_api_client.patch(URL, bad, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == set(bad)


def test_a_combined_write_stores_both_and_audits_only_the_configuration(
    admin_api_client: APIClient, fleet: Any
) -> None:
    version, state = config_version_current(), state_version()
    response = admin_api_client.patch(
        URL, {"priority": 7, "health": "unhealthy", "error_rate": 1}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["priority"], response.json()["health"]) == (
        7,
        "unhealthy",
    )
    assert Backend.objects.get(name="cloud-gpt").priority == 7
    assert observed()["health"] == "unhealthy"
    assert config_version_current() == version + 1
    assert state_version() == state + 1
    fields = AuditEntry.objects.filter(config_version=version + 1).values_list(
        "field", flat=True
    )
    assert list(fields) == ["priority"]


@pytest.mark.parametrize(
    "payload",
    [
        {"priority": 7, "error_rate": 2},
        {"capability_tier": 9, "health": "unhealthy"},
        {"priority": 7, "health": "unhealthy", "models": [{"name": "m"}] * 2},
    ],
    ids=["bad-observed", "bad-config", "bad-models-after-save"],
)
def test_a_combined_write_with_any_bad_part_writes_nothing(
    admin_api_client: APIClient, fleet: Any, payload: dict[str, Any]
) -> None:
    before, state = observed(), state_version()
    version, audited = config_version_current(), AuditEntry.objects.count()
    response = admin_api_client.patch(URL, payload, format="json")
    assert response.status_code == 400, response.json()
    backend = Backend.objects.get(name="cloud-gpt")
    assert (backend.priority, backend.capability_tier) == (50, 5)
    assert (observed(), state_version()) == (before, state)
    assert (config_version_current(), AuditEntry.objects.count()) == (
        version,
        audited,
    )


def test_a_bad_observed_value_rolls_back_the_configuration_saved_with_it(
    fleet: Any,
) -> None:
    """The service itself is all or nothing, whatever its caller checked."""
    backend = Backend.objects.get(name="cloud-gpt")
    version = config_version_current()
    backend.priority = 7
    with pytest.raises(ValidationError) as raised:
        backend_save(
            backend=backend,
            models=None,
            actor="test",
            observed={"health": "unhealthy", "error_rate": 3.0},
        )
    assert list(raised.value.message_dict) == ["error_rate"]
    assert Backend.objects.get(name="cloud-gpt").priority == 50
    assert observed()["health"] == "unknown"
    assert config_version_current() == version


def test_a_new_backend_may_carry_its_observed_state(
    admin_api_client: APIClient, db: None
) -> None:
    response = admin_api_client.post(
        "/api/v1/backends/",
        {
            "name": "gpu-box",
            "kind": "vllm",
            "base_url": "http://127.0.0.1:8001",
            "health": "loading",
            "loading_eta_ms": 30000,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["health"], response.json()["loading_eta_ms"]) == (
        "loading",
        30000,
    )
    stored = observed("gpu-box")
    assert (stored["health"], stored["loading_eta_ms"]) == ("loading", 30000)
    audited = set(
        AuditEntry.objects.filter(object_name="gpu-box").values_list("field", flat=True)
    )
    assert not audited & set(OBSERVED)


def test_an_ordinary_key_cannot_create_a_backend_with_observed_state(
    api_client: APIClient, db: None
) -> None:
    response = api_client.post(
        "/api/v1/backends/",
        {
            "name": "gpu-box",
            "kind": "vllm",
            "base_url": "http://127.0.0.1:8001",
            "health": "healthy",
        },
        format="json",
    )
    assert response.status_code == 403
    assert list(response.json()["error"]["fields"]) == ["health"]
    assert not Backend.objects.filter(name="gpu-box").exists()


def test_a_missing_key_is_still_a_401_not_a_403(fleet: Any) -> None:
    response = APIClient().patch(URL, {"health": "unhealthy"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"
