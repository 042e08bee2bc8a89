"""Draft services: one version per apply, conflicts read from the audit log,
nothing kept by a validation."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connections

from routing.api.draft_changes import change_write
from routing.errors import ConflictError
from routing.models import (
    Alias,
    AuditEntry,
    Backend,
    ConfigVersion,
    Draft,
    DraftStatus,
    PrivacyZone,
)
from routing.services.config import (
    config_change_set,
    config_save,
    config_version_current,
)
from routing.services.drafts import (
    DraftChange,
    draft_apply,
    draft_audit_actor,
    draft_changes_validate,
    draft_conflicts,
    draft_create,
    draft_discard,
)

pytestmark = pytest.mark.django_db

NEW_BACKEND = DraftChange(
    "backends",
    "create",
    "gpu-2",
    {
        "kind": "vllm",
        "base_url": "http://127.0.0.1:8002",
        "privacy_zone": "local",
        "models": [{"name": "llama3.1:8b"}, {"name": "qwen2.5:7b"}],
    },
)


def create(*changes: DraftChange, name: str = "d") -> Draft:
    return draft_create(name=name, changes=changes, actor="olivia", write=change_write)


def test_a_change_set_writes_one_version_for_every_save_in_it() -> None:
    start = config_version_current()
    with config_change_set() as change_set:
        config_save(instance=PrivacyZone(name="eu"), actor="t")
        config_save(instance=PrivacyZone(name="us"), actor="t")
    assert change_set.version == start + 1 == config_version_current()
    entries = AuditEntry.objects.filter(object_name__in=["eu", "us"])
    assert {e.config_version for e in entries} == {start + 1}
    assert {e.draft_id for e in entries} == {None}
    config_save(instance=PrivacyZone(name="ap"), actor="t")
    assert config_version_current() == start + 2


def test_a_validation_keeps_nothing_and_leaves_the_version_row_alone() -> None:
    row = ConfigVersion.objects.get()
    audited = AuditEntry.objects.count()
    draft_changes_validate(
        changes=[DraftChange("zones", "create", "eu"), NEW_BACKEND],
        write=change_write,
    )
    assert ConfigVersion.objects.get().version == row.version
    assert AuditEntry.objects.count() == audited
    assert not Backend.objects.filter(name="gpu-2").exists()
    assert not PrivacyZone.objects.filter(name="eu").exists()


def test_applying_a_backend_with_its_models_is_one_version_naming_the_draft(
    fleet: Any,
) -> None:
    draft = create(DraftChange("zones", "create", "eu"), NEW_BACKEND, name="gpu 2")
    start = config_version_current()
    applied = draft_apply(draft_id=draft.pk, actor="olivia", write=change_write)
    assert applied.status == DraftStatus.APPLIED
    assert applied.applied_version == start + 1 == config_version_current()
    entries = AuditEntry.objects.filter(config_version=start + 1)
    assert {e.object_type for e in entries} == {
        "privacyzone",
        "backend",
        "backendmodel",
    }
    assert {e.actor for e in entries} == {f'olivia (draft {draft.pk} "gpu 2")'}
    assert {e.draft_id for e in entries} == {draft.pk}
    assert sorted(
        Backend.objects.get(name="gpu-2").models.values_list("name", flat=True)
    ) == [
        "llama3.1:8b",
        "qwen2.5:7b",
    ]


def test_a_draft_without_effect_applies_at_todays_version() -> None:
    draft = create(DraftChange("zones", "update", "local", {"private": True}))
    version = config_version_current()
    applied = draft_apply(draft_id=draft.pk, actor="olivia", write=change_write)
    assert applied.applied_version == version == config_version_current()


def _edit(instance: Any, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(instance, name, value)
    config_save(instance=instance, actor="sam")


def test_conflicts_follow_renames_aliases_and_served_models(fleet: Any) -> None:
    config_save(instance=Alias(name="fast", target="llama3.1:8b"), actor="t")
    config_save(instance=PrivacyZone(name="apac"), actor="t")
    base = config_version_current()
    changes = [
        DraftChange("aliases", "update", "fast", {"target": "gpt-4o"}),
        DraftChange("backends", "update", "local-gpu", {"priority": 1}),
        DraftChange("zones", "update", "eu", {"private": True}),
        DraftChange("backends", "update", "cloud-gpt", {"priority": 2}),
    ]
    assert draft_conflicts(base_version=base, changes=changes) == []
    _edit(Alias.objects.get(name="fast"), target="gpt-4o")
    offer = Backend.objects.get(name="local-gpu").models.get()
    _edit(offer, context_window=4096)
    _edit(PrivacyZone.objects.get(name="apac"), name="eu")
    found = draft_conflicts(base_version=base, changes=changes)
    assert [(c.index, c.resource, c.name, c.actor) for c in found] == [
        (0, "aliases", "fast", "sam"),
        (1, "backends", "local-gpu", "sam"),
        (2, "zones", "eu", "sam"),
    ]
    assert found[2].config_version == config_version_current()


def test_a_renamed_object_conflicts_under_its_old_name(fleet: Any) -> None:
    base = config_version_current()
    _edit(Backend.objects.get(name="cloud-gpt"), name="openai")
    changes = [DraftChange("backends", "update", "cloud-gpt", {"priority": 2})]
    [conflict] = draft_conflicts(base_version=base, changes=changes)
    assert (conflict.name, conflict.index) == ("cloud-gpt", 0)


def test_an_apply_refused_for_a_conflict_keeps_the_draft_open(fleet: Any) -> None:
    draft = create(DraftChange("backends", "update", "local-gpu", {"priority": 1}))
    _edit(Backend.objects.get(name="local-gpu"), capability_tier=2)
    with pytest.raises(ConflictError) as refused:
        draft_apply(draft_id=draft.pk, actor="olivia", write=change_write)
    assert "backend 'local-gpu'" in refused.value.message
    draft.refresh_from_db()
    assert draft.status == DraftStatus.OPEN
    assert Backend.objects.get(name="local-gpu").priority == 40


def test_the_audit_actor_fits_the_column() -> None:
    draft = Draft(pk=7, name="move the rack " * 30)
    actor = draft_audit_actor(actor="olivia", draft=draft)
    assert len(actor) == 150
    assert actor.startswith('olivia (draft 7 "move the rack')
    assert actor.endswith('…")')
    short = draft_audit_actor(actor="olivia", draft=Draft(pk=8, name="move"))
    assert short == 'olivia (draft 8 "move")'


def test_a_discarded_draft_stays_discarded() -> None:
    draft = create(DraftChange("zones", "create", "eu"))
    assert draft_discard(draft_id=draft.pk).status == DraftStatus.DISCARDED
    assert draft_discard(draft_id=draft.pk).status == DraftStatus.DISCARDED
    with pytest.raises(ConflictError):
        draft_apply(draft_id=draft.pk, actor="olivia", write=change_write)


def _slow_write(change: DraftChange, actor: str) -> None:
    time.sleep(0.3)  # widen the gap between the conflict check and the write
    change_write(change, actor)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_of_two_drafts_applied_at_once_on_one_backend_the_second_is_refused(
    postgres: None, fleet: Any
) -> None:
    drafts = [
        create(DraftChange("backends", "update", "local-gpu", {"priority": p}))
        for p in (1, 2)
    ]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def apply(draft: Draft) -> None:
        try:
            barrier.wait(timeout=10)
            draft_apply(draft_id=draft.pk, actor="olivia", write=_slow_write)
            outcomes.append("applied")
        except ConflictError:
            outcomes.append("conflict")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=apply, args=(d,)) for d in drafts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert sorted(outcomes) == ["applied", "conflict"]
    statuses = sorted(Draft.objects.values_list("status", flat=True))
    assert statuses == ["applied", "open"]
