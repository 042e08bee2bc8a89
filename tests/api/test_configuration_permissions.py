"""Login sessions edit configuration over the API with Django's model permissions
(as in the admin), and the CSRF check; staff status alone grants nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from routing.models import Backend, Budget, PrivacyZone

pytestmark = pytest.mark.django_db


def session(django_user_model: Any, name: str, *groups: str) -> APIClient:
    """A logged-in browser session (real login, CSRF enforced) of a staff user."""
    user = django_user_model.objects.create_user(
        username=name, password="pw", is_staff=True
    )
    user.groups.add(*Group.objects.filter(name__in=groups))
    client = APIClient(enforce_csrf_checks=True)
    client.get("/login/")  # sets the CSRF cookie
    response = client.post(
        "/login/",
        {
            "username": name,
            "password": "pw",
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )
    assert response.status_code == 302
    client.credentials(HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    return client


def test_a_staff_login_without_permissions_gets_403_reading_and_writing_config(
    django_user_model: Any, fleet: Any
) -> None:
    staff = session(django_user_model, "sam")
    writes = [
        staff.patch("/api/v1/budgets/global/", {"monthly_limit_usd": 1}, format="json"),
        staff.post("/api/v1/zones/", {"name": "eu"}, format="json"),
        staff.patch("/api/v1/backends/local-gpu/", {"priority": 1}, format="json"),
        staff.delete("/api/v1/backends/cloud-gpt/"),
    ]
    assert [r.status_code for r in writes] == [403, 403, 403, 403]
    error = writes[0].json()["error"]
    assert error["type"] == "forbidden"
    assert "routing.change_budget" in error["message"]
    assert staff.get("/api/v1/budgets/").status_code == 403
    assert Budget.objects.get(name="global").monthly_limit_usd is None
    assert not PrivacyZone.objects.filter(name="eu").exists()
    assert Backend.objects.filter(name="cloud-gpt").exists()


def test_an_operator_edits_a_backend_and_reads_budgets_but_cannot_edit_them(
    django_user_model: Any, fleet: Any
) -> None:
    operator = session(django_user_model, "otto", "operators")
    response = operator.patch(
        "/api/v1/backends/local-gpu/",
        {"priority": 7, "enabled": False, "capability_tier": 2},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert Backend.objects.get(name="local-gpu").priority == 7
    assert operator.get("/api/v1/budgets/").status_code == 200
    refused = operator.patch(
        "/api/v1/budgets/global/", {"monthly_limit_usd": 1}, format="json"
    )
    assert refused.status_code == 403
    assert operator.delete("/api/v1/backends/local-gpu/").status_code == 403
    assert (
        operator.post("/api/v1/zones/", {"name": "eu"}, format="json").status_code
        == 403
    )


def test_an_admins_member_edits_budgets_and_zones(
    django_user_model: Any, fleet: Any
) -> None:
    admin = session(django_user_model, "ada", "admins")
    response = admin.patch(
        "/api/v1/budgets/global/", {"monthly_limit_usd": 50}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert (
        admin.post("/api/v1/zones/", {"name": "eu"}, format="json").status_code == 201
    )


def test_a_session_write_without_the_csrf_token_is_refused(
    django_user_model: Any, fleet: Any
) -> None:
    admin = session(django_user_model, "ada", "admins")
    admin.credentials()  # drop the X-CSRFToken header
    response = admin.patch(
        "/api/v1/budgets/global/", {"monthly_limit_usd": 50}, format="json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_an_operator_may_not_change_what_a_backend_is(
    django_user_model: Any, fleet: Any
) -> None:
    operator = session(django_user_model, "otto", "operators")
    url = "/api/v1/backends/local-gpu/"
    refused = [
        operator.patch(url, {"base_url": "http://evil.example"}, format="json"),
        operator.patch(url, {"priority": 3, "kind": "openai"}, format="json"),
        operator.put(url, {"name": "local-gpu", "priority": 3}, format="json"),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    message = refused[0].json()["error"]["message"]
    assert "routing.change_backend" in message
    assert "privacy_zone, capability_tier, priority, enabled" in message
    backend = Backend.objects.get(name="local-gpu")
    assert backend.base_url != "http://evil.example"
    assert backend.priority != 3


def test_change_backend_alone_cannot_rewrite_the_served_models(
    django_user_model: Any, fleet: Any
) -> None:
    from django.contrib.auth.models import Permission

    editor = session(django_user_model, "eve")
    user = django_user_model.objects.get(username="eve")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_backend", "change_backend"])
    )
    response = editor.patch(
        "/api/v1/backends/local-gpu/",
        {"models": [{"name": "brand-new-model"}]},
        format="json",
    )
    assert response.status_code == 403
    assert "routing.add_backendmodel" in response.json()["error"]["message"]
    offers = Backend.objects.get(name="local-gpu").models.values_list("name", flat=True)
    assert "brand-new-model" not in offers
    assert (
        editor.patch(
            "/api/v1/backends/local-gpu/", {"priority": 4}, format="json"
        ).status_code
        == 200
    )
