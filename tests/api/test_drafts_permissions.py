"""Drafts need an admin API key or a staff login; applying one needs what each
of its live edits would need."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.models import Backend, Draft, PrivacyZone
from tests.api.test_configuration_permissions import session

pytestmark = pytest.mark.django_db

ZONE = {"resource": "zones", "action": "create", "name": "eu", "fields": {}}
PRIORITY = {
    "resource": "backends",
    "action": "update",
    "name": "local-gpu",
    "fields": {"priority": 3},
}
URL = "/api/v1/drafts/"


def test_an_ordinary_key_and_a_stranger_cannot_read_or_write_drafts(
    api_client: APIClient, fleet: Any
) -> None:
    refused = api_client.post(URL, {"name": "x", "changes": [ZONE]}, format="json")
    assert refused.status_code == 403
    assert "admin API key or a staff login" in refused.json()["error"]["message"]
    assert api_client.get(URL).status_code == 403
    assert APIClient().get(URL).status_code == 401
    assert not Draft.objects.exists()


def test_a_login_without_staff_status_cannot_draft(
    client: Any, django_user_model: Any, fleet: Any
) -> None:
    user = django_user_model.objects.create_user(username="nina", password="pw")
    client.force_login(user)
    response = client.post(
        URL, {"name": "x", "changes": [ZONE]}, content_type="application/json"
    )
    assert response.status_code == 403


def test_a_staff_login_drafts_but_applies_only_what_it_may_edit_live(
    django_user_model: Any, fleet: Any
) -> None:
    operator = session(django_user_model, "otto", "operators")
    created = operator.post(
        URL, {"name": "zone and priority", "changes": [ZONE, PRIORITY]}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["created_by"] == "otto"
    refused = operator.post(f"{URL}{created.json()['id']}/apply")
    assert refused.status_code == 403
    assert "routing.add_privacyzone" in refused.json()["error"]["message"]
    assert not PrivacyZone.objects.filter(name="eu").exists()
    assert Draft.objects.get().status == "open"

    operating = operator.post(URL, {"name": "priority", "changes": [PRIORITY]}, "json")
    applied = operator.post(f"{URL}{operating.json()['id']}/apply")
    assert applied.status_code == 200, applied.json()
    assert Backend.objects.get(name="local-gpu").priority == 3


def test_an_admin_login_applies_with_csrf(django_user_model: Any, fleet: Any) -> None:
    admin = session(django_user_model, "ada", "admins")
    created = admin.post(URL, {"name": "zone", "changes": [ZONE]}, format="json")
    without_csrf = APIClient(enforce_csrf_checks=True)
    without_csrf.force_login(django_user_model.objects.get(username="ada"))
    assert without_csrf.post(f"{URL}{created.json()['id']}/apply").status_code == 403
    applied = admin.post(f"{URL}{created.json()['id']}/apply")
    assert applied.status_code == 200, applied.json()
    assert PrivacyZone.objects.filter(name="eu").exists()
