"""Admins edit a backend's zone and tier in the admin; every save is audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from routing.models import AuditEntry, Backend, BackendModel
from routing.services.config import config_version_current
from tests.factories import BackendFactory, BackendModelFactory, cloud_zone

pytestmark = pytest.mark.django_db


def change_form(box: Backend, **overrides: Any) -> dict[str, Any]:
    offers = list(box.models.all())
    data: dict[str, Any] = {
        "name": box.name,
        "kind": box.kind,
        "base_url": box.base_url,
        "enabled": "on",
        "privacy_zone": box.privacy_zone_id or "",
        "capability_tier": box.capability_tier,
        "priority": box.priority,
        "max_concurrency": box.max_concurrency,
        "models-TOTAL_FORMS": len(offers),
        "models-INITIAL_FORMS": len(offers),
        "models-MIN_NUM_FORMS": 0,
        "models-MAX_NUM_FORMS": 1000,
    }
    for index, offer in enumerate(offers):
        prefix = f"models-{index}-"
        data |= {
            prefix + "id": offer.pk,
            prefix + "backend": box.pk,
            prefix + "name": offer.name,
            prefix + "context_window": offer.context_window,
            prefix + "input_cost_per_1k": offer.input_cost_per_1k,
            prefix + "output_cost_per_1k": offer.output_cost_per_1k,
        }
    data.update(overrides)
    return data


def test_admin_changing_zone_and_tier_audits_each_field_and_bumps_version(
    admin_client_as_operator: Any,
) -> None:
    box = BackendFactory(capability_tier=2)
    BackendModelFactory(backend=box)
    version = config_version_current()
    url = reverse("admin:routing_backend_change", args=[box.pk])
    form = change_form(box, privacy_zone=cloud_zone().pk, capability_tier=4)
    response = admin_client_as_operator.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    box.refresh_from_db()
    assert (box.privacy_zone.name, box.capability_tier) == ("cloud", 4)
    entries = AuditEntry.objects.filter(
        object_name=box.name, config_version=version + 1
    )
    assert {(e.field, e.old_value, e.new_value, e.actor) for e in entries} == {
        ("privacy_zone", "local", "cloud", "olivia"),
        ("capability_tier", "2", "4", "olivia"),
    }
    assert config_version_current() == version + 1


def test_admin_editing_a_served_models_price_is_audited(
    admin_client_as_operator: Any,
) -> None:
    box = BackendFactory()
    offer = BackendModelFactory(backend=box)
    url = reverse("admin:routing_backend_change", args=[box.pk])
    form = change_form(box, **{"models-0-input_cost_per_1k": "0.0025"})
    assert admin_client_as_operator.post(url, form).status_code == 302
    entry = AuditEntry.objects.get(
        object_type="backendmodel", field="input_cost_per_1k"
    )
    assert (entry.object_name, entry.old_value, entry.new_value) == (
        f"{box.name}/{offer.name}",
        "0",
        "0.0025",
    )


def test_admin_shows_the_model_layer_message_for_a_bad_tier(
    admin_client_as_operator: Any,
) -> None:
    box = BackendFactory(capability_tier=2)
    url = reverse("admin:routing_backend_change", args=[box.pk])
    version = config_version_current()
    response = admin_client_as_operator.post(url, change_form(box, capability_tier=9))
    assert response.status_code == 200
    assert "Capability tier must be between 1 and 5." in response.content.decode()
    box.refresh_from_db()
    assert box.capability_tier == 2
    assert config_version_current() == version


def test_admin_list_inline_edit_of_tier_is_audited(
    admin_client_as_operator: Any,
) -> None:
    box = BackendFactory(capability_tier=1, priority=50)
    url = reverse("admin:routing_backend_changelist")
    form = {
        "form-TOTAL_FORMS": 1,
        "form-INITIAL_FORMS": 1,
        "form-MIN_NUM_FORMS": 0,
        "form-MAX_NUM_FORMS": 1000,
        "form-0-id": box.pk,
        "form-0-privacy_zone": box.privacy_zone_id,
        "form-0-capability_tier": 3,
        "form-0-priority": 50,
        "form-0-enabled": "on",
        "_save": "Save",
    }
    assert admin_client_as_operator.post(url, form).status_code == 302
    entry = AuditEntry.objects.get(object_name=box.name, action="update")
    assert (entry.field, entry.old_value, entry.new_value) == (
        "capability_tier",
        "1",
        "3",
    )


def test_deleting_a_backend_in_the_admin_is_audited(
    admin_client_as_operator: Any,
) -> None:
    box = BackendFactory()
    url = reverse("admin:routing_backend_delete", args=[box.pk])
    assert admin_client_as_operator.post(url, {"post": "yes"}).status_code == 302
    assert not Backend.objects.filter(pk=box.pk).exists()
    assert not BackendModel.objects.filter(backend_id=box.pk).exists()
    assert AuditEntry.objects.filter(object_name=box.name, action="delete").exists()


def test_non_staff_users_cannot_open_the_admin(
    client: Any, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user(username="viewer", password="pw")
    client.force_login(user)
    response = client.get(reverse("admin:routing_backend_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_enabling_a_disabled_backend_in_the_admin_schedules_a_probe(
    admin_client_as_operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    box = BackendFactory(enabled=False)
    url = reverse("admin:routing_backend_change", args=[box.pk])
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client_as_operator.post(url, change_form(box))
    assert response.status_code == 302, response.content.decode()[:2000]
    box.refresh_from_db()
    assert box.enabled
    # the probe of this backend, sent once the edit commits
    assert [c.args[:1] for c in callbacks] == [(box.pk,)]


def test_enabling_a_backend_from_the_admin_list_schedules_a_probe(
    admin_client_as_operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    box = BackendFactory(enabled=False)
    data = {
        "form-TOTAL_FORMS": 1,
        "form-INITIAL_FORMS": 1,
        "form-0-id": box.pk,
        "form-0-privacy_zone": box.privacy_zone_id,
        "form-0-capability_tier": box.capability_tier,
        "form-0-priority": box.priority,
        "form-0-enabled": "on",
        "_save": "Save",
    }
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client_as_operator.post(
            reverse("admin:routing_backend_changelist"), data
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    # the probe of this backend, sent once the edit commits
    assert [c.args[:1] for c in callbacks] == [(box.pk,)]


def test_the_admin_refuses_to_delete_a_built_in_zone(
    admin_client_as_operator: Any,
) -> None:
    from routing.models import PrivacyZone

    zone = PrivacyZone.objects.get(name="cloud")
    Backend.objects.filter(privacy_zone=zone).update(privacy_zone=None)
    url = reverse("admin:routing_privacyzone_delete", args=[zone.pk])
    assert admin_client_as_operator.post(url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:routing_privacyzone_changelist")
    response = admin_client_as_operator.post(
        changelist,
        {"action": "delete_selected", "_selected_action": [zone.pk], "post": "yes"},
    )
    assert response.status_code == 403
    assert PrivacyZone.objects.filter(name="cloud").exists()
    page = admin_client_as_operator.get(
        reverse("admin:routing_privacyzone_change", args=[zone.pk])
    ).content.decode()
    assert 'name="name"' not in page  # shown, not editable
    assert "/delete/" not in page


def test_the_admin_still_edits_a_built_in_zones_description(
    admin_client_as_operator: Any,
) -> None:
    from routing.models import PrivacyZone

    zone = PrivacyZone.objects.get(name="local")
    url = reverse("admin:routing_privacyzone_change", args=[zone.pk])
    response = admin_client_as_operator.post(
        url, {"name": "renamed", "private": "on", "description": "Our racks."}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    zone.refresh_from_db()
    assert (zone.name, zone.description) == ("local", "Our racks.")
