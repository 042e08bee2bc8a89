"""Saving and deleting configuration: audited per field, bumping the config version.

The admin, the API and the demo loader all write configuration through these
two functions, so every change leaves an audit trail and a new version.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal

from django.db import models, transaction
from django.db.models import F

from routing.errors import ConflictError
from routing.models import AuditAction, AuditEntry, Budget, ConfigVersion, PrivacyZone
from routing.services.budgets import budget_spend_recount, budget_totals_reconcile

CONFIG_VERSION_PK = 1

#: Rows routing and ``load_demo`` depend on: editable, but never renamed or deleted.
BUILT_IN: dict[type[models.Model], tuple[str, frozenset[str], str]] = {
    PrivacyZone: ("zone", frozenset({"local", "cloud"}), "its description"),
    Budget: ("budget", frozenset({"global"}), "its limit and thresholds"),
}


def config_built_in(instance: models.Model) -> bool:
    """True for a stored built-in row (zones ``local``/``cloud``, budget ``global``)."""
    spec = BUILT_IN.get(type(instance))
    if spec is None or instance.pk is None:
        return False
    stored = type(instance)._default_manager.filter(pk=instance.pk)
    return stored.filter(name__in=spec[1]).exists()


def _built_in_refusal(
    kind: str, name: str, editable: str, action: str
) -> ConflictError:
    message = (
        f"{kind} {name!r} is built in: routing and the demo depend on it; "
        f"it cannot be {action}. You may change {editable}."
    )
    return ConflictError(message, fields={"name": [message]})


def _check_built_in(
    instance: models.Model, before: models.Model | None, *, deleting: bool
) -> None:
    spec = BUILT_IN.get(type(instance))
    if spec is None or before is None:
        return
    kind, names, editable = spec
    old_name = getattr(before, "name", "")
    if old_name not in names:
        return
    if deleting:
        raise _built_in_refusal(kind, old_name, editable, "deleted")
    if getattr(instance, "name", "") != old_name:
        raise _built_in_refusal(kind, old_name, editable, "renamed")


def config_version_current() -> int:
    """The current configuration version (1 on a fresh database)."""
    version = (
        ConfigVersion.objects.filter(pk=CONFIG_VERSION_PK)
        .values_list("version", flat=True)
        .first()
    )
    return version or 0


@dataclass
class ConfigChangeSet:
    """Saves and deletes made together: one config version for all of them.

    ``draft_id`` is written on each audit entry; ``dry_run`` leaves the version
    row alone (the writes are about to be rolled back: a validation).
    """

    draft_id: int | None = None
    dry_run: bool = False
    version: int | None = None


_change_set: ContextVar[ConfigChangeSet | None] = ContextVar(
    "config_change_set", default=None
)


@contextmanager
def config_change_set(
    *, draft_id: int | None = None, dry_run: bool = False
) -> Iterator[ConfigChangeSet]:
    """Make every ``config_save``/``config_delete`` inside share one version bump.

    Use it inside a transaction (a draft's apply, or a validation that is rolled
    back). The version is bumped by the first change that changes something;
    ``ConfigChangeSet.version`` is then that version (None while nothing changed).
    """
    change_set = ConfigChangeSet(draft_id=draft_id, dry_run=dry_run)
    token = _change_set.set(change_set)
    try:
        yield change_set
    finally:
        _change_set.reset(token)


def config_version_bump() -> int:
    """Increase the version atomically and return the new value.

    Inside ``config_change_set`` only the first call bumps; later calls return
    the same version (a dry run returns the next version without writing it).
    """
    change_set = _change_set.get()
    if change_set is None:
        return _version_bump()
    if change_set.version is None:
        change_set.version = (
            config_version_current() + 1 if change_set.dry_run else _version_bump()
        )
    return change_set.version


def _version_bump() -> int:
    updated = ConfigVersion.objects.filter(pk=CONFIG_VERSION_PK).update(
        version=F("version") + 1
    )
    if not updated:
        ConfigVersion.objects.create(pk=CONFIG_VERSION_PK, version=1)
    return config_version_current()


def _draft_id() -> int | None:
    change_set = _change_set.get()
    return None if change_set is None else change_set.draft_id


def _display(instance: models.Model, field_name: str) -> str:
    """A field's value as an operator reads it: ``yes``/``no``, ``a, b``, ``""``."""
    field = instance._meta.get_field(field_name)
    if isinstance(field, models.ForeignKey):
        related = getattr(instance, field_name)
        return "" if related is None else str(related)
    value = getattr(instance, field_name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):  # e.g. a budget's scope: "zones: cloud"
        return "; ".join(
            f"{key}: {', '.join(map(str, item)) if isinstance(item, list) else item}"
            for key, item in sorted(value.items())
            if item is not None
        )
    return str(value)


def _snapshot(instance: models.Model) -> dict[str, str]:
    fields: tuple[str, ...] = getattr(instance, "AUDITED_FIELDS", ())
    return {name: _display(instance, name) for name in fields}


def _object_type(instance: models.Model) -> str:
    return instance._meta.model_name or type(instance).__name__.lower()


def _save_configuration(instance: models.Model, *, update: bool) -> None:
    """Save ``instance``, except fields something else maintains on existing rows."""
    maintained: tuple[str, ...] = getattr(instance, "MAINTAINED_FIELDS", ())
    if not (update and maintained):
        instance.save()
        return
    instance.save(
        update_fields=[
            f.name
            for f in instance._meta.concrete_fields
            if not f.primary_key and f.name not in maintained
        ]
    )
    instance.refresh_from_db(fields=list(maintained))


@transaction.atomic
def config_save(*, instance: models.Model, actor: str) -> list[AuditEntry]:
    """Validate and save a configuration object; audit each changed field.

    Returns the audit entries written (none when nothing changed, and then the
    version does not move).
    """
    model = type(instance)
    before_row = (
        model._default_manager.filter(pk=instance.pk).first() if instance.pk else None
    )
    _check_built_in(instance, before_row, deleting=False)
    before = _snapshot(before_row) if before_row is not None else None
    instance.full_clean()
    _save_configuration(instance, update=before_row is not None)
    after = _snapshot(instance)
    if before is None:
        action = AuditAction.CREATE
        changes = {name: ("", value) for name, value in after.items() if value != ""}
    else:
        action = AuditAction.UPDATE
        changes = {
            name: (before[name], value)
            for name, value in after.items()
            if before.get(name) != value
        }
    if not changes:
        return []
    if isinstance(instance, Budget):
        if before is None or "scope" in changes:
            budget_spend_recount(budget_id=instance.pk)
        elif "monthly_limit_usd" in changes and before["monthly_limit_usd"] == "":
            # A tracking-only budget's cached total lags its ledger: bring it up
            # to date before the limit is enforced on it.
            budget_totals_reconcile(budget_id=instance.pk)
        instance.refresh_from_db(fields=["spent_usd"])
    version = config_version_bump()
    entries = [
        AuditEntry(
            actor=actor,
            action=action,
            object_type=_object_type(instance),
            object_name=str(instance),
            field=name,
            old_value=old,
            new_value=new,
            config_version=version,
            draft_id=_draft_id(),
        )
        for name, (old, new) in changes.items()
    ]
    return AuditEntry.objects.bulk_create(entries)


@transaction.atomic
def config_delete(*, instance: models.Model, actor: str) -> list[AuditEntry]:
    """Delete a configuration object, auditing the values it had.

    Built-in rows (``BUILT_IN``) are refused with ``ConflictError`` (409).
    """
    if type(instance) in BUILT_IN:
        stored = type(instance)._default_manager.filter(pk=instance.pk).first()
        _check_built_in(instance, stored, deleting=True)
    before = _snapshot(instance)
    name, object_type = str(instance), _object_type(instance)
    instance.delete()
    version = config_version_bump()
    entries = [
        AuditEntry(
            actor=actor,
            action=AuditAction.DELETE,
            object_type=object_type,
            object_name=name,
            field=field,
            old_value=value,
            new_value="",
            config_version=version,
            draft_id=_draft_id(),
        )
        for field, value in before.items()
    ]
    return AuditEntry.objects.bulk_create(entries)
