"""Staff edit a backend inline (audited, version bumped); nobody else can."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from routing.models import AuditEntry, Backend
from routing.services.config import config_version_current

pytestmark = pytest.mark.django_db


def edit_url(name: str) -> str:
    return reverse("explorer:backend-edit", args=[name])


def form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "privacy_zone": "local",
        "capability_tier": 3,
        "priority": 40,
        "enabled": "on",
    }
    data.update(overrides)
    return data


def test_a_staff_edit_saves_audits_and_bumps_the_version(staff_client, fleet):
    before = config_version_current()
    response = staff_client.post(
        edit_url("local-gpu"), form(capability_tier=4), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.strip().startswith('<tr id="backend-local-gpu"')
    assert 'class="tier num">4<' in html
    assert Backend.objects.get(name="local-gpu").capability_tier == 4
    assert config_version_current() == before + 1
    entry = AuditEntry.objects.get(
        object_name="local-gpu", field="capability_tier", action="update"
    )
    assert (entry.actor, entry.old_value, entry.new_value) == ("olivia", "3", "4")
    assert entry.config_version == before + 1
    assert 'id="config-version" hx-swap-oob="true"' in html


def test_an_unchanged_save_writes_no_audit_and_keeps_the_version(staff_client, fleet):
    before = config_version_current()
    staff_client.post(edit_url("local-gpu"), form(), HTTP_HX_REQUEST="true")
    assert config_version_current() == before


def test_a_refused_value_comes_back_inline_with_the_model_message(staff_client, fleet):
    before = config_version_current()
    response = staff_client.post(
        edit_url("local-gpu"), form(priority=250), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert 'class="field-error"' in html and "Priority" in html
    assert html.strip().startswith('<tr id="backend-local-gpu" class="backend editing"')
    assert Backend.objects.get(name="local-gpu").priority == 40
    assert config_version_current() == before


def test_without_javascript_a_save_redirects_back_to_the_table(staff_client, fleet):
    response = staff_client.post(edit_url("cloud-gpt"), form(privacy_zone="cloud"))
    assert response.status_code == 302
    assert response["Location"] == reverse("explorer:backends")


def test_staff_see_edit_links_and_viewers_do_not(operator, viewer, fleet):
    staff, other = Client(), Client()
    staff.force_login(operator)
    other.force_login(viewer)
    staff_html = staff.get(reverse("explorer:backends")).content.decode()
    assert edit_url("local-gpu") in staff_html
    viewer_html = other.get(reverse("explorer:backends")).content.decode()
    assert "local-gpu" in viewer_html
    assert (
        "/edit/" not in viewer_html and '<form class="inline-edit"' not in viewer_html
    )


def test_a_viewer_gets_403_on_edit_and_nothing_changes(viewer_client, fleet):
    before = config_version_current()
    assert viewer_client.get(edit_url("local-gpu")).status_code == 403
    response = viewer_client.post(edit_url("local-gpu"), form(capability_tier=1))
    assert response.status_code == 403
    assert Backend.objects.get(name="local-gpu").capability_tier == 3
    assert config_version_current() == before


def test_an_edit_without_a_csrf_token_is_refused(operator, fleet):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(edit_url("local-gpu"), form(capability_tier=5))
    assert response.status_code == 403
    assert Backend.objects.get(name="local-gpu").capability_tier == 3


def test_the_edit_form_is_a_fragment_for_htmx_and_a_page_without(staff_client, fleet):
    part = staff_client.get(edit_url("local-gpu"), HTTP_HX_REQUEST="true")
    assert part.content.decode().strip().startswith("<tr")
    page = staff_client.get(edit_url("local-gpu")).content.decode()
    assert "<html" in page and 'class="backend editing"' in page


def _user_in(django_user_model, name, *groups):  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(
        username=name, password="pw", is_staff=True
    )
    user.groups.add(*Group.objects.filter(name__in=groups))
    client = Client()
    client.force_login(user)
    return client


def test_staff_without_the_change_backend_permission_get_403_and_no_edit_links(
    django_user_model, fleet
):
    staff = _user_in(django_user_model, "sam")
    assert staff.get(edit_url("local-gpu")).status_code == 403
    response = staff.post(edit_url("local-gpu"), form(capability_tier=1))
    assert response.status_code == 403
    assert Backend.objects.get(name="local-gpu").capability_tier == 3
    assert (
        edit_url("local-gpu")
        not in staff.get(reverse("explorer:backends")).content.decode()
    )


def test_an_operators_member_edits_zone_tier_priority_and_enabled_inline(
    django_user_model, fleet
):
    operator = _user_in(django_user_model, "otto", "operators")
    html = operator.get(reverse("explorer:backends")).content.decode()
    assert edit_url("local-gpu") in html
    response = operator.post(
        edit_url("local-gpu"),
        form(capability_tier=2, priority=7, enabled=""),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    backend = Backend.objects.get(name="local-gpu")
    assert (backend.capability_tier, backend.priority, backend.enabled) == (2, 7, False)


def test_enabling_a_disabled_backend_in_the_explorer_schedules_a_probe(
    staff_client, fleet, django_capture_on_commit_callbacks
):
    Backend.objects.filter(name="local-gpu").update(enabled=False)
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(
            edit_url("local-gpu"), form(), HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    backend = Backend.objects.get(name="local-gpu")
    assert backend.enabled
    # the probe of this backend, sent once the edit commits
    assert [c.args[:1] for c in callbacks] == [(backend.pk,)]
