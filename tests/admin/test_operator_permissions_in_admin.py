"""In the admin, the ``operators`` group changes a backend's zone, tier,
priority and enabled flag, and nothing else; ``admins`` change everything."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from routing.models import Backend

pytestmark = pytest.mark.django_db


def staff_in(django_user_model: Any, name: str, group: str) -> Client:
    user = django_user_model.objects.create_user(
        username=name, password="pw", is_staff=True
    )
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def test_an_operator_sees_only_the_operator_fields_as_editable(
    django_user_model: Any, fleet: Any
) -> None:
    operator = staff_in(django_user_model, "otto", "operators")
    backend = Backend.objects.get(name="local-gpu")
    page = operator.get(f"/admin/routing/backend/{backend.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert set(form.fields) == set(Backend.OPERATOR_FIELDS)


def test_an_operator_changes_the_priority_but_not_the_url_in_the_admin(
    django_user_model: Any, fleet: Any
) -> None:
    operator = staff_in(django_user_model, "otto", "operators")
    backend = Backend.objects.get(name="local-gpu")
    response = operator.post(
        f"/admin/routing/backend/{backend.pk}/change/",
        {
            "privacy_zone": backend.privacy_zone_id or "",
            "capability_tier": backend.capability_tier,
            "priority": 9,
            "enabled": "on",
            "base_url": "http://evil.example",
            "models-TOTAL_FORMS": "0",
            "models-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    backend.refresh_from_db()
    assert backend.priority == 9
    assert backend.base_url != "http://evil.example"


def test_an_admins_member_changes_every_backend_field(
    django_user_model: Any, fleet: Any
) -> None:
    admin = staff_in(django_user_model, "ada", "admins")
    backend = Backend.objects.get(name="local-gpu")
    form = (
        admin.get(f"/admin/routing/backend/{backend.pk}/change/")
        .context["adminform"]
        .form
    )
    assert {"base_url", "kind", "name", *Backend.OPERATOR_FIELDS} <= set(form.fields)
