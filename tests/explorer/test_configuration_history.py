"""Configuration history: one entry per change with a readable field diff, grouped
by version, linking to the object and to the decisions made under the version."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from routing.explorer_selectors import AUDIT_PAGE_SIZE
from routing.models import AuditEntry, Backend, FallbackChain
from routing.services.config import config_save, config_version_current
from tests.factories import AliasFactory, local_zone

pytestmark = pytest.mark.django_db

PYTHON_REPRS = ("True", "False", "None", "['", "[]")


def history(client, query: str = "") -> str:  # type: ignore[no-untyped-def]
    response = client.get(reverse("explorer:config") + query)
    assert response.status_code == 200
    return response.content.decode()


def entries(html: str) -> list[str]:
    """The HTML of each change entry (one <tr class="audit-entry ...">)."""
    return re.findall(r'<tr class="audit-entry[^"]*">(.*?)</tr>', html, re.S)


def field_diff(entry: str) -> dict[str, str]:
    """field name -> its diff text, tags stripped, whitespace collapsed."""
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", entry, re.S)
    return {
        name: " ".join(re.sub(r"<[^>]+>", " ", diff).split()) for name, diff in pairs
    }


def test_creating_one_backend_shows_as_one_entry_with_its_fields(staff_client, fleet):
    box = Backend(
        name="new-box",
        kind="ollama",
        base_url="http://127.0.0.1:19999",
        privacy_zone=local_zone(),
        capability_tier=3,
    )
    config_save(instance=box, actor="olivia")
    version = config_version_current()
    html = history(staff_client, f"?version={version}")
    (entry,) = entries(html)
    assert "olivia" in entry and "create backend" in entry and "new-box" in entry
    assert field_diff(entry) == {
        "name": "new-box",
        "kind": "ollama",
        "base_url": "http://127.0.0.1:19999",
        "privacy_zone": "local",
        "capability_tier": "3",
        "priority": "50",
        "enabled": "yes",
        "max_concurrency": "4",
    }
    assert 'href="/backends/#backend-new-box"' in entry
    assert f'href="/?config_version={version}"' in html
    assert not any(r in entry for r in PYTHON_REPRS)


def test_an_update_shows_old_and_new_value_of_each_changed_field(staff_client, fleet):
    box = Backend.objects.get(name="local-gpu")
    box.enabled = False
    box.capability_tier = 4
    config_save(instance=box, actor="sam")
    html = history(staff_client, f"?version={config_version_current()}")
    (entry,) = entries(html)
    assert "update backend" in entry
    assert field_diff(entry) == {"capability_tier": "3 → 4", "enabled": "yes → no"}


def test_lists_and_booleans_are_stored_readably(db):
    AliasFactory(name="fast", target="llama3.1:8b")
    chain = FallbackChain(model="gpt-4o", fallbacks=["fast", "llama3.1:8b"])
    (_, entry_list) = config_save(instance=chain, actor="olivia")
    assert entry_list.new_value == "fast, llama3.1:8b"


def test_entries_stored_as_python_values_are_shown_readably(staff_client, db):
    common = {"actor": "old-admin", "config_version": 7, "old_value": ""}
    AuditEntry.objects.bulk_create(
        [
            AuditEntry(
                action="create",
                object_type="fallbackchain",
                object_name="gpt-4o -> fast, slow",
                field="fallbacks",
                new_value="['fast', 'slow']",
                **common,
            ),
            AuditEntry(
                action="create",
                object_type="fallbackchain",
                object_name="gpt-4o -> fast, slow",
                field="model",
                new_value="gpt-4o",
                **common,
            ),
            AuditEntry(
                action="create",
                object_type="privacyzone",
                object_name="eu",
                field="private",
                new_value="True",
                **common,
            ),
        ]
    )
    html = history(staff_client)
    chain, zone = entries(html)
    assert field_diff(chain) == {"fallbacks": "fast, slow", "model": "gpt-4o"}
    assert field_diff(zone) == {"private": "yes"}
    assert "['" not in html and ">True<" not in html


def test_a_change_links_to_the_admin_page_of_an_object_without_an_explorer_page(
    staff_client, fleet
):
    alias = AliasFactory.build(name="quick", target="llama3.1:8b")
    config_save(instance=alias, actor="olivia")
    (entry,) = entries(history(staff_client, f"?version={config_version_current()}"))
    url = reverse("admin:routing_alias_change", args=[alias.pk])
    assert f'href="{url}"' in entry


def test_history_pages_by_version_and_keeps_the_filters(staff_client, fleet):
    box = Backend.objects.get(name="local-gpu")
    for priority in range(1, AUDIT_PAGE_SIZE + 3):
        box.priority = priority
        config_save(instance=box, actor="pager")
    newest = config_version_current()
    first = history(staff_client, "?actor=pager")
    assert len(entries(first)) == AUDIT_PAGE_SIZE
    cursor = newest - AUDIT_PAGE_SIZE + 1
    assert f"before={cursor}" in first
    second = history(staff_client, f"?actor=pager&before={cursor}")
    assert len(entries(second)) == 2
    assert "before=" not in second
    assert all("pager" in entry for entry in entries(second))
