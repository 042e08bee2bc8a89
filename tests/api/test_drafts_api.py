"""/api/v1/drafts/: changes validated as live edits, applied as one version."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.models import AuditEntry, Backend, Draft, PrivacyZone, TrafficPolicy
from routing.services.config import config_version_current
from tests.fleet_rows import add_policy, chat

pytestmark = pytest.mark.django_db


def change(resource: str, action: str, name: str, /, **fields: Any) -> dict[str, Any]:
    return {"resource": resource, "action": action, "name": name, "fields": fields}


def draft(client: APIClient, *changes: dict[str, Any], name: str = "rack") -> Any:
    return client.post(
        "/api/v1/drafts/", {"name": name, "changes": list(changes)}, format="json"
    )


def fields_of(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    return dict(error["fields"])


MOVE_RACK = [
    change("zones", "create", "eu", private=True, description="Frankfurt"),
    change("backends", "update", "local-gpu", privacy_zone="eu", priority=5),
    change("policies", "create", "eu-only", model_pattern="llama*", privacy="zone:eu"),
]


def test_a_draft_is_stored_with_its_base_version_and_changes_nothing_live(
    admin_api_client: APIClient, fleet: Any
) -> None:
    version = config_version_current()
    audited = AuditEntry.objects.count()
    response = draft(admin_api_client, *MOVE_RACK, name="move rack")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "move rack"
    assert body["status"] == "open"
    assert body["base_version"] == version
    assert body["created_by"] == "api-key:ops"
    assert body["changes"] == MOVE_RACK
    assert body["created_at"] and body["applied_version"] is None
    assert config_version_current() == version
    assert AuditEntry.objects.count() == audited
    assert not PrivacyZone.objects.filter(name="eu").exists()
    assert Backend.objects.get(name="local-gpu").privacy_zone.name == "local"
    assert admin_api_client.get(f"/api/v1/drafts/{body['id']}/").json() == body


def _live_error(client: APIClient, method: str, path: str, data: Any) -> Any:
    response = getattr(client, method)(path, data, format="json")
    assert response.status_code == 400, response.json()
    return response.json()["error"]["fields"]


def test_an_invalid_change_is_named_by_index_and_field_with_the_live_message(
    admin_api_client: APIClient, fleet: Any
) -> None:
    live = _live_error(
        admin_api_client,
        "patch",
        "/api/v1/backends/local-gpu/",
        {"priority": 500, "privacy_zone": "nowhere"},
    )
    live_scope = _live_error(
        admin_api_client,
        "patch",
        "/api/v1/budgets/global/",
        {"scope": {"zones": ["mars"]}},
    )
    response = draft(
        admin_api_client,
        change("zones", "create", "eu"),
        change("budgets", "update", "global", scope={"zones": ["mars"]}),
        change("backends", "update", "local-gpu", priority=500, privacy_zone="nowhere"),
    )
    fields = fields_of(response)
    assert fields == {
        "changes.1.scope.zones": live_scope["scope.zones"],
        "changes.2.priority": live["priority"],
        "changes.2.privacy_zone": live["privacy_zone"],
    }
    assert "changes.2.priority" in response.json()["error"]["message"]
    assert not Draft.objects.exists()


def test_each_change_is_validated_with_the_earlier_ones_applied(
    admin_api_client: APIClient, fleet: Any
) -> None:
    zone_first = draft(
        admin_api_client,
        change("zones", "create", "eu", private=True),
        change("backends", "update", "local-gpu", privacy_zone="eu"),
        change("budgets", "create", "eu-spend", scope={"zones": ["eu"]}),
    )
    assert zone_first.status_code == 201, zone_first.json()
    zone_last = draft(
        admin_api_client,
        change("backends", "update", "local-gpu", privacy_zone="eu"),
        change("budgets", "create", "eu-spend", scope={"zones": ["eu"]}),
        change("zones", "create", "eu", private=True),
    )
    fields = fields_of(zone_last)
    assert set(fields) == {"changes.0.privacy_zone", "changes.1.scope.zones"}
    assert "eu" in fields["changes.1.scope.zones"][0]


def test_a_rename_is_seen_by_the_later_changes(
    admin_api_client: APIClient, fleet: Any
) -> None:
    response = draft(
        admin_api_client,
        change("backends", "update", "cloud-gpt", name="openai"),
        change("backends", "update", "openai", priority=7),
        change("backends", "update", "cloud-gpt", priority=8),
    )
    fields = fields_of(response)
    assert list(fields) == ["changes.2.name"]
    assert "No backend named 'cloud-gpt'" in fields["changes.2.name"][0]


def test_a_backend_with_models_gives_nested_field_names(
    admin_api_client: APIClient, fleet: Any
) -> None:
    response = draft(
        admin_api_client,
        change(
            "backends",
            "create",
            "gpu-2",
            kind="vllm",
            base_url="http://127.0.0.1:8002",
            models=[{"name": "llama3.1:8b"}, {"name": "x", "input_cost_per_1k": -1}],
        ),
    )
    fields = fields_of(response)
    assert list(fields) == ["changes.0.models.1.input_cost_per_1k"]


@pytest.mark.parametrize(
    ("bad", "key", "words"),
    [
        (change("racks", "create", "r1"), "changes.0.resource", "not a valid choice"),
        (change("zones", "rename", "eu"), "changes.0.action", "not a valid choice"),
        ({"resource": "zones", "action": "create"}, "changes.0.name", "required"),
        (change("zones", "create", ""), "changes.0.name", "blank"),
        (
            change("zones", "update", "nowhere", private=True),
            "changes.0.name",
            "No zone named 'nowhere'",
        ),
        (change("policies", "delete", "nothing"), "changes.0.name", "No policy named"),
        (
            change("fallbacks", "delete", "gpt-9"),
            "changes.0.name",
            "No fallback chain named",
        ),
        (
            change("zones", "delete", "local", private=True),
            "changes.0.fields",
            "no fields",
        ),
        (change("zones", "update", "local"), "changes.0.fields", "at least one field"),
        (
            {**change("zones", "create", "eu"), "fields": [1]},
            "changes.0.fields",
            "dictionary",
        ),
        (
            change("backends", "update", "local-gpu", health="unhealthy"),
            "changes.0.health",
            "Observed state",
        ),
        (
            change("backends", "update", "local-gpu", colour="red"),
            "changes.0.colour",
            "Not a writable field",
        ),
        (
            change("budgets", "update", "global", spent_usd=0),
            "changes.0.spent_usd",
            "Not a writable field",
        ),
        (
            change("zones", "create", "eu", name="us"),
            "changes.0.name",
            "give the name once",
        ),
        (change("zones", "delete", "local"), "changes.0.name", "built in"),
        (change("zones", "update", "cloud", name="sky"), "changes.0.name", "built in"),
        (change("zones", "create", "Bad Name"), "changes.0.name", "lower-case"),
        ("not a change", "changes.0", "dictionary"),
    ],
)
def test_a_bad_change_is_a_400_naming_the_right_key(
    admin_api_client: APIClient, fleet: Any, bad: Any, key: str, words: str
) -> None:
    fields = fields_of(draft(admin_api_client, bad))
    assert key in fields, fields
    assert words.lower() in " ".join(fields[key]).lower(), fields


def test_deleting_a_zone_in_use_is_refused_with_the_live_message(
    admin_api_client: APIClient, fleet: Any
) -> None:
    fields = fields_of(
        draft(
            admin_api_client,
            change("zones", "create", "eu"),
            change("backends", "update", "local-gpu", privacy_zone="eu"),
            change("zones", "delete", "eu"),
        )
    )
    assert fields == {
        "changes.2.name": ["Still in use by: local-gpu. Change those first."]
    }


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"changes": []}, "name"),
        ({"name": "x"}, "changes"),
        ({"name": "x", "changes": {"resource": "zones"}}, "changes"),
        ({"name": "x" * 201, "changes": []}, "name"),
        ({"name": "x", "description": 5 * "y" * 500, "changes": []}, "description"),
        ({"name": "x", "changes": [change("zones", "create", "z")] * 201}, "changes"),
        ([1, 2], "non_field_errors"),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_field(
    admin_api_client: APIClient, body: Any, key: str
) -> None:
    assert key in fields_of(
        admin_api_client.post("/api/v1/drafts/", body, format="json")
    )


def test_applying_writes_one_version_with_audit_entries_naming_the_draft(
    admin_api_client: APIClient, fleet: Any
) -> None:
    created = draft(admin_api_client, *MOVE_RACK, name="move rack").json()
    version = config_version_current()
    response = admin_api_client.post(f"/api/v1/drafts/{created['id']}/apply")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "applied"
    assert body["applied_version"] == version + 1 == config_version_current()
    assert body["applied_by"] == "api-key:ops" and body["applied_at"]
    entries = AuditEntry.objects.filter(config_version=version + 1)
    assert {(e.object_type, e.object_name) for e in entries} == {
        ("privacyzone", "eu"),
        ("backend", "local-gpu"),
        ("trafficpolicy", "eu-only"),
    }
    for entry in entries:
        assert entry.actor == f'api-key:ops (draft {created["id"]} "move rack")'
        assert entry.draft_id == created["id"]
    assert Backend.objects.get(name="local-gpu").privacy_zone.name == "eu"
    assert TrafficPolicy.objects.get(name="eu-only").privacy == "zone:eu"


def test_an_object_edited_after_the_base_version_makes_apply_a_409(
    admin_api_client: APIClient, fleet: Any
) -> None:
    created = draft(admin_api_client, *MOVE_RACK).json()
    edit = admin_api_client.patch(
        "/api/v1/backends/local-gpu/", {"capability_tier": 2}, format="json"
    )
    assert edit.status_code == 200
    version = config_version_current()
    response = admin_api_client.post(f"/api/v1/drafts/{created['id']}/apply")
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["type"] == "conflict"
    assert "backend 'local-gpu'" in error["message"]
    assert "api-key:ops" in error["message"]
    assert list(error["fields"]) == ["changes.1.name"]
    assert error["conflicts"] == [
        {
            "change": 1,
            "resource": "backends",
            "name": "local-gpu",
            "config_version": version,
            "actor": "api-key:ops",
        }
    ]
    assert config_version_current() == version
    assert not PrivacyZone.objects.filter(name="eu").exists()
    assert Draft.objects.get(pk=created["id"]).status == "open"


def test_sending_the_changes_again_revalidates_and_rebases_the_draft(
    admin_api_client: APIClient, fleet: Any
) -> None:
    created = draft(admin_api_client, *MOVE_RACK).json()
    admin_api_client.patch(
        "/api/v1/backends/local-gpu/", {"capability_tier": 2}, format="json"
    )
    invalid = admin_api_client.patch(
        f"/api/v1/drafts/{created['id']}/",
        {"changes": [change("backends", "update", "local-gpu", priority=-1)]},
        format="json",
    )
    assert list(fields_of(invalid)) == ["changes.0.priority"]
    renamed = admin_api_client.patch(
        f"/api/v1/drafts/{created['id']}/", {"name": "move rack"}, format="json"
    )
    assert renamed.json()["base_version"] == created["base_version"]
    rebased = admin_api_client.patch(
        f"/api/v1/drafts/{created['id']}/", {"changes": MOVE_RACK}, format="json"
    )
    assert rebased.status_code == 200, rebased.json()
    assert rebased.json()["base_version"] == config_version_current()
    assert rebased.json()["name"] == "move rack"
    applied = admin_api_client.post(f"/api/v1/drafts/{created['id']}/apply")
    assert applied.status_code == 200, applied.json()
    backend = Backend.objects.get(name="local-gpu")
    assert (backend.capability_tier, backend.priority) == (2, 5)


def test_a_change_that_no_longer_applies_is_a_409_and_nothing_is_applied(
    admin_api_client: APIClient, fleet: Any
) -> None:
    admin_api_client.post("/api/v1/zones/", {"name": "eu"}, format="json")
    created = draft(
        admin_api_client,
        change("policies", "create", "p1", model_pattern="gpt*"),
        change("backends", "update", "cloud-gpt", privacy_zone="eu"),
    ).json()
    assert admin_api_client.delete("/api/v1/zones/eu/").status_code == 204
    version = config_version_current()
    response = admin_api_client.post(f"/api/v1/drafts/{created['id']}/apply")
    assert response.status_code == 409, response.json()
    assert list(response.json()["error"]["fields"]) == ["changes.1.privacy_zone"]
    assert "no longer applies" in response.json()["error"]["message"]
    assert config_version_current() == version
    assert not TrafficPolicy.objects.filter(name="p1").exists()


def test_an_applied_draft_is_read_only(admin_api_client: APIClient, fleet: Any) -> None:
    created = draft(admin_api_client, change("zones", "create", "eu")).json()
    url = f"/api/v1/drafts/{created['id']}/"
    assert admin_api_client.post(f"{url}apply").status_code == 200
    answers = [
        admin_api_client.patch(url, {"name": "again"}, format="json"),
        admin_api_client.delete(url),
        admin_api_client.post(f"{url}apply"),
    ]
    assert [a.status_code for a in answers] == [409, 409, 409]
    assert "read-only" in answers[0].json()["error"]["message"]
    assert admin_api_client.get(url).json()["status"] == "applied"
    assert admin_api_client.put(url, {}, format="json").status_code == 405


def test_deleting_an_open_draft_discards_it(
    admin_api_client: APIClient, fleet: Any
) -> None:
    created = draft(admin_api_client, change("zones", "create", "eu")).json()
    url = f"/api/v1/drafts/{created['id']}/"
    assert admin_api_client.delete(url).status_code == 204
    assert admin_api_client.get(url).json()["status"] == "discarded"
    assert admin_api_client.delete(url).status_code == 204
    refused = admin_api_client.post(f"{url}apply")
    assert refused.status_code == 409
    assert "discarded" in refused.json()["error"]["message"]
    assert not PrivacyZone.objects.filter(name="eu").exists()


def test_the_list_is_newest_first_and_filters_by_status(
    admin_api_client: APIClient, fleet: Any
) -> None:
    first = draft(admin_api_client, change("zones", "create", "eu"), name="a").json()
    second = draft(admin_api_client, change("zones", "create", "us"), name="b").json()
    admin_api_client.delete(f"/api/v1/drafts/{first['id']}/")
    page = admin_api_client.get("/api/v1/drafts/").json()
    assert [d["name"] for d in page["results"]] == ["b", "a"]
    open_only = admin_api_client.get("/api/v1/drafts/", {"status": "open"}).json()
    assert [d["id"] for d in open_only["results"]] == [second["id"]]
    assert "status" in fields_of(admin_api_client.get("/api/v1/drafts/?status=x"))
    assert "cursor" in fields_of(admin_api_client.get("/api/v1/drafts/?cursor=zz"))
    assert admin_api_client.get("/api/v1/drafts/99999/").status_code == 404
    assert admin_api_client.post("/api/v1/drafts/99999/apply").status_code == 404


def test_live_routing_never_sees_an_open_draft(
    api_client: APIClient, admin_api_client: APIClient, fleet: Any
) -> None:
    restricted = {"X-Nexus-Privacy": "restricted"}
    created = draft(
        admin_api_client,
        change("backends", "update", "local-gpu", privacy_zone="cloud"),
    ).json()
    before = api_client.post(
        "/api/v1/route", chat("llama3.1:8b"), format="json", headers=restricted
    )
    assert before.status_code == 200
    assert before.json()["backend"]["name"] == "local-gpu"
    admin_api_client.post(f"/api/v1/drafts/{created['id']}/apply")
    after = api_client.post(
        "/api/v1/route", chat("llama3.1:8b"), format="json", headers=restricted
    )
    assert after.status_code == 503
    assert after.json()["outcome"] == "reject"


def test_a_policy_draft_does_not_reach_routing_until_applied(
    api_client: APIClient, admin_api_client: APIClient, fleet: Any
) -> None:
    add_policy("any", "gpt*", privacy="unrestricted")
    created = draft(
        admin_api_client, change("policies", "update", "any", privacy="restricted")
    ).json()
    before = api_client.post("/api/v1/route", chat("gpt-4o"), format="json")
    assert before.status_code == 200
    admin_api_client.post(f"/api/v1/drafts/{created['id']}/apply")
    after = api_client.post("/api/v1/route", chat("gpt-4o"), format="json")
    assert after.status_code == 503


def test_a_patched_change_is_checked_in_full(
    admin_api_client: APIClient, fleet: Any
) -> None:
    created = draft(admin_api_client, change("zones", "create", "eu")).json()
    response = admin_api_client.patch(
        f"/api/v1/drafts/{created['id']}/",
        {"changes": [{"action": "create", "name": "us"}]},
        format="json",
    )
    assert list(fields_of(response)) == ["changes.0.resource"]
    assert Draft.objects.get(pk=created["id"]).changes == created["changes"]
