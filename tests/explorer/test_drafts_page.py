"""The Drafts page: list and create drafts, add changes with the live edit
forms (errors inline, with the live edit's message), remove them, apply (one
config version; a conflict names the objects) and discard; who may do what."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from routing.explorer.draft_forms import BackendChangeForm
from routing.models import AuditEntry, Backend, Draft, PrivacyZone
from routing.services.config import config_save, config_version_current

pytestmark = pytest.mark.django_db

DRAFTS = reverse("explorer:drafts")


def page_of(draft: Draft) -> str:
    return reverse("explorer:draft", args=[draft.pk])


def change_url(draft: Draft, resource: str) -> str:
    return reverse("explorer:draft-change", args=[draft.pk, resource])


def new_draft(client: Client, name: str = "move rack") -> Draft:
    response = client.post(DRAFTS, {"name": name, "description": "why"})
    assert response.status_code == 302
    draft = Draft.objects.get(name=name)
    assert response["Location"] == page_of(draft)
    return draft


def backend_form(backend: str = "local-gpu", **fields: Any) -> dict[str, Any]:
    """The backend change form as the page prefills it for ``backend``, with
    ``fields`` typed over it (an update target)."""
    initial = BackendChangeForm.initial_for(Backend.objects.get(name=backend))
    data: dict[str, Any] = {"target-action": "update", "target-name": backend}
    data.update({k: v for k, v in initial.items() if not isinstance(v, bool)})
    if initial["enabled"]:
        data["enabled"] = "on"
    data.update(fields)
    if data.get("enabled") is False:
        del data["enabled"]
    return data


def field_block(page: str, name: str) -> str:
    """The markup of one form field, its errors included."""
    start = page.index(f'class="field field-{name}')
    return page[start : page.index("</div>", start)]


def stored(draft: Draft) -> list[dict[str, Any]]:
    draft.refresh_from_db()
    return list(draft.changes)


@pytest.fixture
def operators_client(client: Client, django_user_model: Any) -> Client:
    """Staff in the ``operators`` group: may change a backend's zone, tier,
    priority and enabled flag, nothing else."""
    user = django_user_model.objects.create_user(
        username="oscar", password="pw", is_staff=True
    )
    user.groups.add(Group.objects.get(name="operators"))
    client.force_login(user)
    return client


def test_anonymous_visitors_are_sent_to_the_login(client: Client, fleet: Any) -> None:
    for url in (DRAFTS, reverse("explorer:draft", args=[1])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_a_login_without_staff_status_may_not_see_drafts(
    viewer_client: Client, fleet: Any
) -> None:
    response = viewer_client.get(DRAFTS)
    assert response.status_code == 403
    assert viewer_client.post(DRAFTS, {"name": "x"}).status_code == 403
    assert not Draft.objects.exists()


def test_the_navigation_links_to_drafts(staff_client: Client, fleet: Any) -> None:
    page = staff_client.get(reverse("explorer:backends")).content.decode()
    assert f'href="{DRAFTS}"' in page


def test_drafts_are_listed_with_status_base_version_author_and_changes(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    staff_client.post(change_url(draft, "backends"), backend_form(priority="10"))
    page = staff_client.get(DRAFTS).content.decode()
    row = page[page.index(f'id="draft-{draft.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "move rack" in row and f'href="{page_of(draft)}"' in row
    assert "open" in row and "olivia" in row
    assert f"v{draft.base_version}" in row
    assert '<td class="num changes">1</td>' in row


def test_a_new_draft_needs_a_name(staff_client: Client, fleet: Any) -> None:
    response = staff_client.post(DRAFTS, {"name": "", "description": ""})
    assert response.status_code == 422
    assert "This field is required." in field_block(response.content.decode(), "name")
    assert not Draft.objects.exists()


def test_an_update_form_is_prefilled_and_records_only_the_changed_fields(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    form = staff_client.get(
        change_url(draft, "backends"),
        {"target-action": "update", "target-name": "local-gpu"},
    ).content.decode()
    assert 'name="priority" value="40"' in form
    assert '<option value="local" selected>local</option>' in form
    response = staff_client.post(
        change_url(draft, "backends"), backend_form(priority="10")
    )
    assert response.status_code == 302
    assert stored(draft) == [
        {
            "resource": "backends",
            "action": "update",
            "name": "local-gpu",
            "fields": {"priority": 10},
        }
    ]
    assert Backend.objects.get(name="local-gpu").priority == 40  # not live
    page = staff_client.get(page_of(draft)).content.decode()
    assert '<strong class="action">update</strong>' in page
    assert "<dt>priority</dt><dd><code>10</code></dd>" in page


def test_an_update_that_changes_nothing_says_so_at_the_form(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    response = staff_client.post(change_url(draft, "backends"), backend_form())
    assert response.status_code == 422
    assert "An update changes at least one field." in response.content.decode()
    assert stored(draft) == []


def test_an_invalid_change_shows_the_live_edits_message_at_its_field(
    staff_client: Client, fleet: Any
) -> None:
    live = staff_client.patch(
        "/api/v1/backends/local-gpu/",
        json.dumps({"priority": 500}),
        content_type="application/json",
    )
    assert live.status_code == 400
    (message,) = live.json()["error"]["fields"]["priority"]
    draft = new_draft(staff_client)
    response = staff_client.post(
        change_url(draft, "backends"),
        backend_form(priority="500"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    part = response.content.decode()
    assert part.strip().startswith('<div id="change-form">')
    block = field_block(part, "priority")
    assert "invalid" in block and html.escape(message) in block
    assert 'value="500"' in block  # what was typed stays
    assert stored(draft) == []


def test_a_budget_scope_error_shows_at_the_zones_select(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    response = staff_client.post(
        change_url(draft, "budgets"),
        {
            "target-action": "create",
            "target-name": "",
            "name": "eu",
            "monthly_limit_usd": "50",
            "soft_limit_percent": "75",
            "hard_limit_action": "block_cloud",
            "reset_day": "1",
            "zones": ["mars"],
            "alert_thresholds": "80, 100",
        },
    )
    assert response.status_code == 422
    assert "mars" in field_block(response.content.decode(), "zones")
    assert stored(draft) == []


def test_a_change_sees_a_zone_created_earlier_in_the_draft(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    zone = staff_client.post(
        change_url(draft, "zones"),
        {"target-action": "create", "name": "eu", "private": "on"},
    )
    assert zone.status_code == 302
    form = staff_client.get(
        change_url(draft, "backends"),
        {"target-action": "update", "target-name": "cloud-gpt"},
    ).content.decode()
    assert '<option value="eu">eu</option>' in form  # as the draft leaves zones
    moved = staff_client.post(
        change_url(draft, "backends"), backend_form("cloud-gpt", privacy_zone="eu")
    )
    assert moved.status_code == 302
    assert [c["fields"] for c in stored(draft)] == [
        {"private": True, "description": ""},
        {"privacy_zone": "eu"},
    ]
    assert not PrivacyZone.objects.filter(name="eu").exists()


def test_policies_aliases_fallbacks_and_deletes_are_recorded_as_the_api_takes_them(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    posts = [
        (
            "policies",
            {
                "target-action": "create",
                "name": "gpt-private",
                "model_pattern": "gpt-*",
                "order": "10",
                "privacy": "restricted",
                "fallback_allowed": "on",
                "max_cost_per_request_usd": "0.50",
            },
        ),
        ("aliases", {"target-action": "create", "name": "smart", "target": "gpt-4o"}),
        (
            "fallbacks",
            {
                "target-action": "create",
                "model": "gpt-4o",
                "fallbacks": "llama3.1:8b ,",
            },
        ),
        ("backends", {"target-action": "delete", "target-name": "cloud-llama"}),
    ]
    for resource, data in posts:
        response = staff_client.post(change_url(draft, resource), data)
        assert response.status_code == 302, response.content.decode()
    changes = stored(draft)
    assert changes[0]["fields"] == {
        "model_pattern": "gpt-*",
        "order": 10,
        "privacy": "restricted",
        "min_tier": None,
        "fallback_allowed": True,
        "max_cost_per_request_usd": "0.5",
        "description": "",
    }
    assert changes[1] == {
        "resource": "aliases",
        "action": "create",
        "name": "smart",
        "fields": {"target": "gpt-4o"},
    }
    assert changes[2]["name"] == "gpt-4o"
    assert changes[2]["fields"] == {"fallbacks": ["llama3.1:8b"]}
    assert changes[3] == {
        "resource": "backends",
        "action": "delete",
        "name": "cloud-llama",
        "fields": {},
    }


def test_an_htmx_add_answers_the_draft_body_with_the_new_change(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    response = staff_client.post(
        change_url(draft, "backends"),
        backend_form(capability_tier="4"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#draft-body"
    part = response.content.decode()
    assert part.strip().startswith('<section id="draft-body">')
    assert "Change 1 added." in part and 'id="change-1"' in part
    assert "<html" not in part


def test_the_change_form_opens_as_a_fragment_or_inside_the_page(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    query = {"target-action": "create", "target-name": ""}
    part = staff_client.get(change_url(draft, "aliases"), query, HTTP_HX_REQUEST="true")
    assert part.content.decode().strip().startswith('<div id="change-form">')
    assert "HX-Request" in part["Vary"]
    full = staff_client.get(change_url(draft, "aliases"), query).content.decode()
    assert "<html" in full and 'class="change-form change-aliases"' in full


def test_removing_a_change_keeps_the_others(staff_client: Client, fleet: Any) -> None:
    draft = new_draft(staff_client)
    staff_client.post(change_url(draft, "backends"), backend_form(priority="10"))
    staff_client.post(
        change_url(draft, "aliases"),
        {"target-action": "create", "name": "smart", "target": "gpt-4o"},
    )
    first = stored(draft)[0]
    response = staff_client.post(
        reverse("explorer:draft-change-remove", args=[draft.pk, 0]),
        {"change": json.dumps(first)},
    )
    assert response.status_code == 302
    assert [c["resource"] for c in stored(draft)] == ["aliases"]


def test_removing_a_change_that_is_no_longer_the_one_shown_is_refused(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    staff_client.post(change_url(draft, "backends"), backend_form(priority="10"))
    shown = {**stored(draft)[0], "fields": {"priority": 11}}
    response = staff_client.post(
        reverse("explorer:draft-change-remove", args=[draft.pk, 0]),
        {"change": json.dumps(shown)},
    )
    assert response.status_code == 409
    assert "changed meanwhile" in response.content.decode()
    assert len(stored(draft)) == 1


def test_removing_a_change_a_later_one_needs_is_refused_naming_it(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    staff_client.post(
        change_url(draft, "zones"), {"target-action": "create", "name": "eu"}
    )
    staff_client.post(
        change_url(draft, "backends"), backend_form("cloud-gpt", privacy_zone="eu")
    )
    response = staff_client.post(
        reverse("explorer:draft-change-remove", args=[draft.pk, 0]),
        {"change": json.dumps(stored(draft)[0])},
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "Change 1 was not removed" in page
    assert "Change 2, privacy_zone:" in page
    assert 'id="change-2" class="change action-update invalid"' in page
    assert len(stored(draft)) == 2


def test_applying_writes_one_config_version_and_leaves_the_draft_read_only(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    staff_client.post(change_url(draft, "backends"), backend_form(priority="10"))
    staff_client.post(
        change_url(draft, "backends"), backend_form("cloud-gpt", capability_tier="4")
    )
    before = config_version_current()
    response = staff_client.post(
        reverse("explorer:draft-apply", args=[draft.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert config_version_current() == before + 1
    assert Backend.objects.get(name="local-gpu").priority == 10
    assert Backend.objects.get(name="cloud-gpt").capability_tier == 4
    draft.refresh_from_db()
    assert draft.status == "applied" and draft.applied_version == before + 1
    actors = set(AuditEntry.objects.filter(draft=draft).values_list("actor", flat=True))
    assert actors == {f'olivia (draft {draft.pk} "move rack")'}
    part = response.content.decode()
    assert f"Applied as config version {before + 1}." in part
    assert f'href="{reverse("explorer:config")}?version={before + 1}"' in part
    page = staff_client.get(page_of(draft)).content.decode()
    assert "Read-only." in page
    assert "Add a change" not in page and "Apply now" not in page
    assert "Remove</button>" not in page
    late = staff_client.post(change_url(draft, "backends"), backend_form(priority="5"))
    assert late.status_code == 409
    assert "read-only" in late.content.decode()
    assert Backend.objects.get(name="local-gpu").priority == 10


def test_a_conflicting_live_edit_makes_apply_a_409_naming_the_object(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    staff_client.post(change_url(draft, "backends"), backend_form(priority="10"))
    backend = Backend.objects.get(name="local-gpu")
    backend.capability_tier = 2
    config_save(instance=backend, actor="mallory")
    version = config_version_current()
    response = staff_client.post(
        reverse("explorer:draft-apply", args=[draft.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 409
    part = html.unescape(response.content.decode())
    assert f"backend 'local-gpu' (version {version} by mallory)" in part
    assert "Nothing was applied." in part
    assert 'id="change-1" class="change action-update invalid"' in part
    assert config_version_current() == version
    assert Backend.objects.get(name="local-gpu").priority == 40
    draft.refresh_from_db()
    assert draft.status == "open"


def test_discarding_keeps_the_draft_read_only(staff_client: Client, fleet: Any) -> None:
    draft = new_draft(staff_client)
    staff_client.post(change_url(draft, "backends"), backend_form(priority="10"))
    response = staff_client.post(reverse("explorer:draft-discard", args=[draft.pk]))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == "discarded"
    page = staff_client.get(page_of(draft)).content.decode()
    assert "Discarded: kept for the record, read-only." in page
    applied = staff_client.post(reverse("explorer:draft-apply", args=[draft.pk]))
    assert applied.status_code == 409
    assert Backend.objects.get(name="local-gpu").priority == 40


def test_operators_apply_only_what_their_live_edits_may_change(
    operators_client: Client, fleet: Any
) -> None:
    zone_only = new_draft(operators_client, "zone only")
    operators_client.post(
        change_url(zone_only, "backends"), backend_form(privacy_zone="cloud")
    )
    page = operators_client.get(page_of(zone_only)).content.decode()
    assert "Apply now" in page
    ok = operators_client.post(reverse("explorer:draft-apply", args=[zone_only.pk]))
    assert ok.status_code == 302
    assert Backend.objects.get(name="local-gpu").privacy_zone.name == "cloud"

    kind = new_draft(operators_client, "kind")
    operators_client.post(change_url(kind, "backends"), backend_form(kind="openai"))
    page = operators_client.get(page_of(kind)).content.decode()
    assert "Apply now" not in page
    assert "it lacks routing.change_backend" in page
    refused = operators_client.post(reverse("explorer:draft-apply", args=[kind.pk]))
    assert refused.status_code == 403
    assert "it lacks routing.change_backend" in refused.content.decode()
    kind.refresh_from_db()
    assert kind.status == "open"
    assert Backend.objects.get(name="local-gpu").kind == "vllm"


def test_every_post_needs_the_csrf_token(operator: Any, fleet: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    assert strict.post(DRAFTS, {"name": "x"}).status_code == 403
    assert not Draft.objects.exists()
    page = strict.get(DRAFTS)
    token = page.cookies["csrftoken"].value
    created = strict.post(DRAFTS, {"name": "x"}, HTTP_X_CSRFTOKEN=token)
    assert created.status_code == 302
    draft = Draft.objects.get()
    for url in (
        change_url(draft, "aliases"),
        reverse("explorer:draft-apply", args=[draft.pk]),
        reverse("explorer:draft-discard", args=[draft.pk]),
        reverse("explorer:draft-change-remove", args=[draft.pk, 0]),
    ):
        assert strict.post(url, {"target-action": "create"}).status_code == 403
    draft.refresh_from_db()
    assert draft.status == "open"


def test_an_unknown_draft_or_resource_is_a_404(
    staff_client: Client, fleet: Any
) -> None:
    assert staff_client.get(reverse("explorer:draft", args=[999])).status_code == 404
    draft = new_draft(staff_client)
    url = reverse("explorer:draft-change", args=[draft.pk, "users"])
    assert staff_client.get(url, {"target-action": "create"}).status_code == 404


def test_a_delete_asks_for_no_fields_and_an_update_needs_an_object(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    url = change_url(draft, "backends")
    delete = staff_client.get(
        url, {"target-action": "delete", "target-name": "cloud-llama"}
    ).content.decode()
    assert "Delete the backend <code>cloud-llama</code>" in delete
    assert 'name="priority"' not in delete
    nothing = staff_client.get(url, {"target-action": "update", "target-name": ""})
    assert nothing.status_code == 400
    assert "Choose the object to change." in nothing.content.decode()
    unknown = staff_client.get(url, {"target-action": "update", "target-name": "x"})
    assert unknown.status_code == 400
    assert "No backend named &#x27;x&#x27;" in unknown.content.decode()


def test_deleting_an_object_still_in_use_is_refused_with_the_live_message(
    staff_client: Client, fleet: Any
) -> None:
    draft = new_draft(staff_client)
    response = staff_client.post(
        change_url(draft, "zones"), {"target-action": "delete", "target-name": "cloud"}
    )
    assert response.status_code == 422
    page = html.unescape(response.content.decode())
    assert "Change 1, name:" in page
    assert stored(draft) == []


def test_zone_and_alias_update_forms_start_from_the_objects_fields(fleet: Any) -> None:
    from routing.explorer.draft_forms import AliasChangeForm, ZoneChangeForm
    from routing.models import Alias

    zone = PrivacyZone.objects.get(name="local")
    assert ZoneChangeForm.initial_for(zone) == {
        "name": "local",
        "private": True,
        "description": zone.description,
    }
    alias = Alias(name="fast", target="llama3.1:8b")
    assert AliasChangeForm.initial_for(alias) == {
        "name": "fast",
        "target": "llama3.1:8b",
    }
