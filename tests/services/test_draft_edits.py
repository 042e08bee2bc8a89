"""Editing a draft one change at a time, and reading the configuration as a
draft would leave it (what the explorer's forms are prefilled with)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from routing.api.draft_changes import change_write
from routing.errors import ConflictError
from routing.models import AuditEntry, Backend, Draft, PrivacyZone
from routing.services.config import config_save, config_version_current
from routing.services.drafts import (
    DraftChange,
    draft_change_add,
    draft_change_remove,
    draft_create,
    draft_preview,
)

pytestmark = pytest.mark.django_db

NEW_ZONE = DraftChange("zones", "create", "eu", {"private": True})
TO_EU = DraftChange("backends", "update", "cloud-gpt", {"privacy_zone": "eu"})


def create(*changes: DraftChange) -> Draft:
    return draft_create(name="d", changes=changes, actor="olivia", write=change_write)


def test_a_preview_reads_the_configuration_as_the_draft_leaves_it_and_keeps_nothing(
    fleet: Any,
) -> None:
    version, audited = config_version_current(), AuditEntry.objects.count()

    def read() -> tuple[str | None, bool]:
        backend = Backend.objects.select_related("privacy_zone").get(name="cloud-gpt")
        zone = backend.privacy_zone
        return (zone.name if zone else None), PrivacyZone.objects.get(name="eu").private

    assert draft_preview(changes=[NEW_ZONE, TO_EU], write=change_write, read=read) == (
        "eu",
        True,
    )
    assert not PrivacyZone.objects.filter(name="eu").exists()
    assert Backend.objects.get(name="cloud-gpt").privacy_zone.name == "cloud"
    assert config_version_current() == version
    assert AuditEntry.objects.count() == audited


def test_a_preview_skips_an_invalid_change(fleet: Any) -> None:
    bad = DraftChange("backends", "update", "cloud-gpt", {"priority": 500})
    seen = draft_preview(
        changes=[bad, NEW_ZONE],
        write=change_write,
        read=lambda: (
            Backend.objects.get(name="cloud-gpt").priority,
            PrivacyZone.objects.filter(name="eu").exists(),
        ),
        skip_invalid=True,
    )
    assert seen == (Backend.objects.get(name="cloud-gpt").priority, True)


def test_a_preview_refuses_an_invalid_change_unless_told_to_skip_it(
    fleet: Any,
) -> None:
    bad = DraftChange("backends", "update", "cloud-gpt", {"priority": 500})
    with pytest.raises(ValidationError) as refused:
        draft_preview(changes=[bad], write=change_write, read=lambda: None)
    assert "changes.0.priority" in refused.value.message_dict


def test_adding_a_change_validates_it_after_the_others_and_rebases(
    fleet: Any,
) -> None:
    draft = create(NEW_ZONE)
    backend = Backend.objects.get(name="local-gpu")
    backend.priority = 41
    config_save(instance=backend, actor="mallory")
    draft = draft_change_add(draft_id=draft.pk, change=TO_EU, write=change_write)
    assert [c["name"] for c in draft.changes] == ["eu", "cloud-gpt"]
    assert draft.base_version == config_version_current()


def test_an_invalid_added_change_is_refused_at_its_index_and_nothing_changes(
    fleet: Any,
) -> None:
    draft = create(NEW_ZONE)
    bad = DraftChange("backends", "update", "cloud-gpt", {"privacy_zone": "mars"})
    with pytest.raises(ValidationError) as refused:
        draft_change_add(draft_id=draft.pk, change=bad, write=change_write)
    assert list(refused.value.message_dict) == ["changes.1.privacy_zone"]
    draft.refresh_from_db()
    assert len(draft.changes) == 1


def test_removing_needs_the_change_shown_and_revalidates_the_rest(
    fleet: Any,
) -> None:
    draft = create(NEW_ZONE, TO_EU)
    with pytest.raises(ConflictError, match="changed meanwhile"):
        draft_change_remove(
            draft_id=draft.pk, index=1, expected=NEW_ZONE, write=change_write
        )
    with pytest.raises(ValidationError) as refused:
        draft_change_remove(
            draft_id=draft.pk, index=0, expected=NEW_ZONE, write=change_write
        )
    assert list(refused.value.message_dict) == ["changes.0.privacy_zone"]
    draft = draft_change_remove(
        draft_id=draft.pk, index=1, expected=TO_EU, write=change_write
    )
    assert [c["name"] for c in draft.changes] == ["eu"]
