"""A backend's ``api_key_env`` names the environment variable holding its upstream
key: written, validated and audited like its other configuration, shown in the
admin, and the key itself never appears anywhere Nexus answers or records."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from routing.models import AuditEntry, Backend
from routing.services.config import config_version_current
from tests.admin.test_audited_admin_edits import change_form
from tests.api.test_api_docs_field_reference import documented_fields

pytestmark = pytest.mark.django_db

URL = "/api/v1/backends/cloud-gpt/"
SECRET = "sk-proj-NEXUS-TEST-SECRET-7f3a9c"


def everything_recorded() -> str:
    """Every stored backend and audit row, as text."""
    rows = [*Backend.objects.values(), *AuditEntry.objects.values()]
    return json.dumps(rows, default=str)


def test_an_admin_key_sets_api_key_env_and_reads_it_back(
    admin_api_client: APIClient, fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_TEST_UPSTREAM_KEY", SECRET)
    version = config_version_current()
    response = admin_api_client.patch(
        URL, {"api_key_env": "NEXUS_TEST_UPSTREAM_KEY"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["api_key_env"] == "NEXUS_TEST_UPSTREAM_KEY"
    assert response.json()["api_key_set"] is True
    again = admin_api_client.get(URL).json()
    assert (again["api_key_env"], again["api_key_set"]) == (
        "NEXUS_TEST_UPSTREAM_KEY",
        True,
    )
    assert Backend.objects.get(name="cloud-gpt").api_key_env == (
        "NEXUS_TEST_UPSTREAM_KEY"
    )
    assert config_version_current() == version + 1
    entry = AuditEntry.objects.get(object_name="cloud-gpt", field="api_key_env")
    assert (entry.actor, entry.old_value, entry.new_value) == (
        "api-key:ops",
        "",
        "NEXUS_TEST_UPSTREAM_KEY",
    )


def test_a_new_backend_may_name_its_key_variable(
    admin_api_client: APIClient, db: None
) -> None:
    response = admin_api_client.post(
        "/api/v1/backends/",
        {
            "name": "openai",
            "kind": "openai",
            "base_url": "https://api.openai.com/v1",
            "api_key_env": "OPENAI_API_KEY",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["api_key_env"] == "OPENAI_API_KEY"
    assert AuditEntry.objects.filter(
        object_name="openai", field="api_key_env", new_value="OPENAI_API_KEY"
    ).exists()


def test_the_key_itself_is_never_returned_audited_or_stored(
    admin_api_client: APIClient,
    admin_client_as_operator: Client,
    fleet: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEXUS_TEST_UPSTREAM_KEY", SECRET)
    answers = [
        admin_api_client.patch(
            URL, {"api_key_env": "NEXUS_TEST_UPSTREAM_KEY"}, format="json"
        ),
        admin_api_client.get(URL),
        admin_api_client.get("/api/v1/backends/"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    backend = Backend.objects.get(name="cloud-gpt")
    page = admin_client_as_operator.get(f"/admin/routing/backend/{backend.pk}/change/")
    assert page.status_code == 200
    assert "NEXUS_TEST_UPSTREAM_KEY" in page.content.decode()
    for text in [*(a.content.decode() for a in answers), page.content.decode()]:
        assert SECRET not in text
    recorded = everything_recorded()
    assert "NEXUS_TEST_UPSTREAM_KEY" in recorded
    assert SECRET not in recorded


@pytest.mark.parametrize("value", [None, ""])
def test_api_key_set_is_false_while_the_variable_is_missing_or_empty(
    admin_api_client: APIClient,
    fleet: Any,
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
) -> None:
    if value is None:
        monkeypatch.delenv("NEXUS_TEST_UPSTREAM_KEY", raising=False)
    else:
        monkeypatch.setenv("NEXUS_TEST_UPSTREAM_KEY", value)
    response = admin_api_client.patch(
        URL, {"api_key_env": "NEXUS_TEST_UPSTREAM_KEY"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["api_key_set"] is False
    monkeypatch.setenv("NEXUS_TEST_UPSTREAM_KEY", SECRET)
    assert admin_api_client.get(URL).json()["api_key_set"] is True


def test_a_backend_without_a_key_variable_has_none_set(
    api_client: APIClient, fleet: Any
) -> None:
    body = api_client.get(URL).json()
    assert (body["api_key_env"], body["api_key_set"]) == ("", False)


@pytest.mark.parametrize(
    "value", [SECRET, "openai_api_key", "1PASSWORD_KEY", "OPENAI API KEY"]
)
def test_a_value_that_is_not_a_variable_name_is_a_400_that_does_not_repeat_it(
    admin_api_client: APIClient, fleet: Any, value: str
) -> None:
    response = admin_api_client.patch(URL, {"api_key_env": value}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == ["api_key_env"]
    assert "OPENAI_API_KEY" in error["fields"]["api_key_env"][0]
    assert "api_key_env" in error["message"]
    assert value not in response.content.decode()
    assert Backend.objects.get(name="cloud-gpt").api_key_env == ""


def test_a_variable_name_over_128_characters_is_a_400(
    admin_api_client: APIClient, fleet: Any
) -> None:
    response = admin_api_client.patch(URL, {"api_key_env": "K" * 129}, format="json")
    assert response.status_code == 400
    messages = response.json()["error"]["fields"]["api_key_env"]
    assert any("128" in message for message in messages)


def test_clearing_api_key_env_is_audited(
    admin_api_client: APIClient, fleet: Any
) -> None:
    admin_api_client.patch(URL, {"api_key_env": "OPENAI_API_KEY"}, format="json")
    response = admin_api_client.patch(URL, {"api_key_env": ""}, format="json")
    assert response.status_code == 200, response.json()
    assert Backend.objects.get(name="cloud-gpt").api_key_env == ""
    assert AuditEntry.objects.filter(
        field="api_key_env", old_value="OPENAI_API_KEY", new_value=""
    ).exists()


def test_an_ordinary_key_and_an_operator_may_not_change_it(
    api_client: APIClient, django_user_model: Any, fleet: Any
) -> None:
    operator = django_user_model.objects.create_user(
        username="otto", password="pw", is_staff=True
    )
    operator.groups.add(Group.objects.get(name="operators"))
    session = APIClient()
    session.force_login(operator)
    refused = [
        api_client.patch(URL, {"api_key_env": "OPENAI_API_KEY"}, format="json"),
        session.patch(URL, {"api_key_env": "OPENAI_API_KEY"}, format="json"),
    ]
    assert [r.status_code for r in refused] == [403, 403]
    assert "privacy_zone, capability_tier" in refused[1].json()["error"]["message"]
    assert Backend.objects.get(name="cloud-gpt").api_key_env == ""


def test_the_admin_edits_api_key_env_and_audits_it(
    admin_client_as_operator: Client, fleet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_TEST_UPSTREAM_KEY", SECRET)
    backend = fleet["cloud-gpt"]
    url = f"/admin/routing/backend/{backend.pk}/change/"
    form = change_form(backend, api_key_env="NEXUS_TEST_UPSTREAM_KEY")
    response = admin_client_as_operator.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Backend.objects.get(pk=backend.pk).api_key_env == "NEXUS_TEST_UPSTREAM_KEY"
    assert AuditEntry.objects.filter(
        object_name="cloud-gpt", field="api_key_env", actor="olivia"
    ).exists()
    page = admin_client_as_operator.get(url)
    assert "api_key_env" in page.context["adminform"].form.fields
    html = page.content.decode()
    shown = re.search(
        r'field-api_key_set.*?<div class="readonly">(.*?)</div>', html, re.S
    )
    assert shown is not None
    assert 'alt="True"' in shown.group(1)
    assert SECRET not in html


def test_an_admin_form_with_a_bad_variable_name_is_refused(
    admin_client_as_operator: Client, fleet: Any
) -> None:
    backend = fleet["cloud-gpt"]
    url = f"/admin/routing/backend/{backend.pk}/change/"
    response = admin_client_as_operator.post(
        url, change_form(backend, api_key_env="not a name")
    )
    assert response.status_code == 200
    assert "api_key_env" in response.context["adminform"].form.errors
    assert Backend.objects.get(pk=backend.pk).api_key_env == ""


def test_every_field_of_a_backend_is_documented(
    api_client: APIClient, fleet: Any
) -> None:
    body = api_client.get(URL).json()
    names = set(body) | {f"models[].{inner}" for inner in body["models"][0]}
    missing = names - documented_fields()
    assert not missing, f"undocumented {sorted(missing)}"
