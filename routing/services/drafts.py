"""Configuration drafts: proposed changes, validated as live edits, applied as one.

A draft's changes are validated by writing them exactly as live edits are
written (``ChangeWriter``: the configuration API's own serializers and
``config_save``) inside a transaction that is always rolled back, so every
message is the one a live edit gets and each change sees the earlier ones.
Applying writes them again, for real, in one transaction under one config
version (``config_change_set``), each audit entry naming the draft.

The writer is passed in by the caller (the API): services do not import the
API layer, and the API layer owns how a change's JSON ``fields`` are read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, models, transaction
from django.utils import timezone

from routing.errors import ConflictError, NotFoundError
from routing.models import (
    Alias,
    AuditEntry,
    Backend,
    Budget,
    ConfigVersion,
    Draft,
    DraftStatus,
    FallbackChain,
    PrivacyZone,
    TrafficPolicy,
)
from routing.services.config import (
    CONFIG_VERSION_PK,
    config_change_set,
    config_version_current,
)

#: The model each resource writes, and the field that addresses it.
RESOURCE_MODELS: dict[str, type[models.Model]] = {
    "zones": PrivacyZone,
    "backends": Backend,
    "aliases": Alias,
    "fallbacks": FallbackChain,
    "policies": TrafficPolicy,
    "budgets": Budget,
}
LOOKUP_FIELDS: dict[str, str] = {"fallbacks": "model"}
#: What the audit log calls each resource's objects (a backend's served models
#: are part of the backend).
_AUDIT_TYPES: dict[str, str] = {
    "privacyzone": "zones",
    "backend": "backends",
    "backendmodel": "backends",
    "alias": "aliases",
    "fallbackchain": "fallbacks",
    "trafficpolicy": "policies",
    "budget": "budgets",
}
#: Singular names for messages.
KINDS: dict[str, str] = {
    "zones": "zone",
    "backends": "backend",
    "aliases": "alias",
    "fallbacks": "fallback chain",
    "policies": "policy",
    "budgets": "budget",
}
#: The actor written on the rolled-back writes of a validation (never stored).
_VALIDATION_ACTOR = "draft validation"


def lookup_field(resource: str) -> str:
    """The field that addresses ``resource``'s objects (``model`` for fallbacks)."""
    return LOOKUP_FIELDS.get(resource, "name")


@dataclass(frozen=True)
class DraftChange:
    """One change of a draft: ``action`` (create, update, delete) on the
    ``resource`` object addressed by ``name``, with the configuration API's
    ``fields`` (an update changes only those)."""

    resource: str
    action: str
    name: str
    fields: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "action": self.action,
            "name": self.name,
            "fields": self.fields,
        }

    def names(self) -> set[str]:
        """The names it addresses: its own, and the new one of a rename."""
        new = self.fields.get(lookup_field(self.resource))
        if self.action == "update" and isinstance(new, str):
            return {self.name, new}
        return {self.name}


#: Writes one change as a live edit writes it, as ``actor``. Refuses an invalid
#: change with a Django ``ValidationError`` keyed by field (``privacy_zone``,
#: ``scope.zones``, ``name`` for an unknown object); writes nothing then.
ChangeWriter = Callable[[DraftChange, str], None]


def draft_changes_from_json(raw: Iterable[dict[str, Any]]) -> list[DraftChange]:
    """The changes stored on a draft, as ``DraftChange`` objects."""
    return [
        DraftChange(
            resource=item["resource"],
            action=item["action"],
            name=item["name"],
            fields=dict(item.get("fields") or {}),
        )
        for item in raw
    ]


def _prefixed(index: int, errors: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, messages in errors.items():
        name = (
            f"changes.{index}"
            if key in (NON_FIELD_ERRORS, "non_field_errors")
            else f"changes.{index}.{key}"
        )
        out.setdefault(name, []).extend(messages)
    return out


def _write_one(
    index: int, change: DraftChange, write: ChangeWriter, actor: str
) -> dict[str, list[str]]:
    """Write ``change`` in a savepoint; its errors keyed ``changes.<index>.<field>``
    (nothing written when there are any)."""
    try:
        with transaction.atomic():
            write(change, actor)
    except DjangoValidationError as exc:
        if hasattr(exc, "error_dict"):
            return _prefixed(index, {k: list(v) for k, v in exc.message_dict.items()})
        return _prefixed(index, {NON_FIELD_ERRORS: list(exc.messages)})
    except (DataError, IntegrityError) as exc:  # a value the database refuses
        message = " ".join(str(exc).split())[:300]
        return _prefixed(
            index, {NON_FIELD_ERRORS: [f"The database refused this change: {message}"]}
        )
    return {}


def _write_all(
    changes: Sequence[DraftChange], write: ChangeWriter, actor: str
) -> dict[str, list[str]]:
    """Write every change in order; the errors of all the invalid ones.

    Each change sees the earlier valid ones (an invalid one writes nothing).
    """
    errors: dict[str, list[str]] = {}
    for index, change in enumerate(changes):
        errors.update(_write_one(index, change, write, actor))
    return errors


def draft_changes_validate(
    *, changes: Sequence[DraftChange], write: ChangeWriter
) -> None:
    """Validate ``changes`` against today's configuration, each with the earlier
    ones applied, by writing them in a transaction that is always rolled back.

    Raises Django's ``ValidationError`` keyed ``changes.<i>.<field>`` (400).
    Nothing is kept: no row, no audit entry, no version (the version row is not
    even locked).
    """
    with transaction.atomic(), config_change_set(dry_run=True):
        errors = _write_all(changes, write, _VALIDATION_ACTOR)
        transaction.set_rollback(True)
    if errors:
        raise DjangoValidationError(errors)


def _open_draft(draft_id: int, *, doing: str) -> Draft:
    """The draft, locked, when it is open; 404 or 409 otherwise."""
    draft = Draft.objects.select_for_update().filter(pk=draft_id).first()
    if draft is None:
        raise NotFoundError(f"No draft {draft_id}.")
    if draft.status != DraftStatus.OPEN:
        raise _not_open(draft, doing)
    return draft


def _not_open(draft: Draft, doing: str) -> ConflictError:
    if draft.status == DraftStatus.APPLIED:
        state = f"was applied as config version {draft.applied_version}"
    else:
        state = "was discarded"
    return ConflictError(
        f"Draft {draft.pk} {state}; it is read-only and cannot be {doing}. "
        "Create a new draft for further changes.",
        extra={"status": draft.status},
    )


@transaction.atomic
def draft_create(
    *,
    name: str,
    description: str = "",
    changes: Sequence[DraftChange],
    actor: str,
    write: ChangeWriter,
) -> Draft:
    """Validate ``changes`` (see ``draft_changes_validate``) and store them as
    an open draft based on today's config version."""
    base_version = config_version_current()
    draft_changes_validate(changes=changes, write=write)
    draft = Draft(
        name=name,
        description=description,
        changes=[change.as_json() for change in changes],
        base_version=base_version,
        created_by=actor,
    )
    draft.full_clean()
    draft.save()
    return draft


@transaction.atomic
def draft_update(
    *,
    draft_id: int,
    write: ChangeWriter,
    name: str | None = None,
    description: str | None = None,
    changes: Sequence[DraftChange] | None = None,
) -> Draft:
    """Change an open draft's name, description or changes.

    New ``changes`` are validated against today's configuration like a new
    draft's, and the draft is re-based on today's config version (an edit made
    since is then one its author has seen). 409 for an applied or discarded
    draft.
    """
    draft = _open_draft(draft_id, doing="changed")
    if changes is not None:
        draft.base_version = config_version_current()
        draft_changes_validate(changes=changes, write=write)
        draft.changes = [change.as_json() for change in changes]
    if name is not None:
        draft.name = name
    if description is not None:
        draft.description = description
    draft.full_clean()
    draft.save()
    return draft


@transaction.atomic
def draft_change_add(
    *, draft_id: int, change: DraftChange, write: ChangeWriter
) -> Draft:
    """Append ``change`` to an open draft (all its changes validated again and
    the draft re-based, as ``draft_update``); the draft locked meanwhile, so
    two edits at once both land."""
    draft = _open_draft(draft_id, doing="changed")
    changes = [*draft_changes_from_json(draft.changes), change]
    return draft_update(draft_id=draft.pk, write=write, changes=changes)


@transaction.atomic
def draft_change_remove(
    *, draft_id: int, index: int, expected: DraftChange, write: ChangeWriter
) -> Draft:
    """Remove change ``index`` of an open draft when it still is ``expected``
    (409 otherwise: the draft changed meanwhile); the rest validated again and
    the draft re-based, as ``draft_update``."""
    draft = _open_draft(draft_id, doing="changed")
    changes = draft_changes_from_json(draft.changes)
    if not 0 <= index < len(changes) or changes[index] != expected:
        raise ConflictError(
            f"Draft {draft.pk} changed meanwhile: change {index + 1} is not the "
            "one shown. Reload it and try again."
        )
    del changes[index]
    return draft_update(draft_id=draft.pk, write=write, changes=changes)


@transaction.atomic
def draft_discard(*, draft_id: int) -> Draft:
    """Mark an open draft discarded (kept for the record; a discarded draft
    stays discarded). 409 for an applied draft, 404 for an unknown one."""
    draft = Draft.objects.select_for_update().filter(pk=draft_id).first()
    if draft is None:
        raise NotFoundError(f"No draft {draft_id}.")
    if draft.status == DraftStatus.APPLIED:
        raise _not_open(draft, "discarded")
    if draft.status == DraftStatus.OPEN:
        draft.status = DraftStatus.DISCARDED
        draft.save(update_fields=["status", "updated_at"])
    return draft


@dataclass(frozen=True)
class DraftConflict:
    """An object a draft changes that was edited after the draft's base version."""

    index: int
    resource: str
    name: str
    config_version: int
    actor: str


def _audited_name(entry: AuditEntry) -> tuple[str, set[str]] | None:
    """(resource, names) an audit entry edited: its object's name, and the old
    name of a rename. None for objects drafts do not address."""
    resource = _AUDIT_TYPES.get(entry.object_type)
    if resource is None:
        return None
    if entry.object_type == "backendmodel":  # "<backend>/<model>"
        return resource, {entry.object_name.split("/", 1)[0]}
    # Aliases and fallback chains read "<name> -> <target(s)>".
    names = {entry.object_name.split(" -> ", 1)[0]}
    if entry.field == lookup_field(resource) and entry.old_value:
        names.add(entry.old_value)
    return resource, names


def draft_conflicts(
    *, base_version: int, changes: Sequence[DraftChange]
) -> list[DraftConflict]:
    """The objects ``changes`` address that the audit log shows edited after
    ``base_version`` (created, changed, renamed or deleted), one per change and
    object, with the latest such edit."""
    touched = {
        (change.resource, name): index
        for index, change in reversed(list(enumerate(changes)))
        for name in change.names()
    }
    if not touched:
        return []
    found: dict[tuple[int, str], DraftConflict] = {}
    entries = AuditEntry.objects.filter(
        config_version__gt=base_version, object_type__in=list(_AUDIT_TYPES)
    ).order_by("config_version", "id")
    for entry in entries.iterator():
        edited = _audited_name(entry)
        if edited is None:
            continue
        resource, names = edited
        for name in names:
            for (res, addressed), index in touched.items():
                if res == resource and addressed == name:
                    found[(index, name)] = DraftConflict(
                        index=index,
                        resource=resource,
                        name=name,
                        config_version=entry.config_version,
                        actor=entry.actor,
                    )
    return sorted(found.values(), key=lambda c: (c.index, c.name))


def _conflict_error(draft: Draft, conflicts: list[DraftConflict]) -> ConflictError:
    listed = ", ".join(
        f"{KINDS[c.resource]} {c.name!r} (version {c.config_version} by {c.actor})"
        for c in conflicts
    )
    fields: dict[str, list[str]] = {}
    for c in conflicts:
        fields.setdefault(f"changes.{c.index}.name", []).append(
            f"{KINDS[c.resource].capitalize()} {c.name!r} was edited after version "
            f"{draft.base_version} (version {c.config_version} by {c.actor})."
        )
    return ConflictError(
        f"Edited since draft {draft.pk} was based on config version "
        f"{draft.base_version}: {listed}. Nothing was applied. Review them, then "
        "send the draft's changes again with PATCH (re-validated and re-based on "
        "today's version) or discard it.",
        fields=fields,
        extra={
            "conflicts": [
                {
                    "change": c.index,
                    "resource": c.resource,
                    "name": c.name,
                    "config_version": c.config_version,
                    "actor": c.actor,
                }
                for c in conflicts
            ]
        },
    )


#: ``AuditEntry.actor`` holds at most this many characters.
_ACTOR_MAX = AuditEntry._meta.get_field("actor").max_length or 150


def draft_audit_actor(*, actor: str, draft: Draft) -> str:
    """The actor written on a draft's audit entries: ``alice (draft 7 "move rack")``,
    the name shortened to fit the column."""
    prefix = f"{actor} (draft {draft.pk} "
    room = _ACTOR_MAX - len(prefix) - 3  # the quotes and the parenthesis
    name = draft.name
    if len(name) > room:
        name = name[: max(room - 1, 0)] + "…"
    return f'{prefix}"{name}")'[:_ACTOR_MAX]


@transaction.atomic
def draft_apply(
    *,
    draft_id: int,
    actor: str,
    write: ChangeWriter,
    authorize: Callable[[list[DraftChange]], None] | None = None,
) -> Draft:
    """Apply an open draft: every change, in order, in this one transaction
    under one new config version, through the live edits' own writes (audited,
    each entry naming the draft).

    409, with nothing applied, when an object it changes was edited after its
    base version (``draft_conflicts``), when a change no longer applies to
    today's configuration (the fields name it, with the live edit's message),
    or when the draft is not open. ``authorize`` sees the changes of the
    locked draft first and raises to refuse them (the caller's permissions).
    """
    draft = _open_draft(draft_id, doing="applied")
    changes = draft_changes_from_json(draft.changes)
    if authorize is not None:
        authorize(changes)
    # Every configuration write bumps the version row: holding its lock, no
    # live edit commits between the conflict check and these writes. (One that
    # wrote its row but has not bumped yet waits for this commit; should this
    # apply need that same row, the database refuses one of the two as a
    # deadlock, answered 503 to retry.)
    list(ConfigVersion.objects.select_for_update().filter(pk=CONFIG_VERSION_PK))
    conflicts = draft_conflicts(base_version=draft.base_version, changes=changes)
    if conflicts:
        raise _conflict_error(draft, conflicts)
    audit_actor = draft_audit_actor(actor=actor, draft=draft)
    with config_change_set(draft_id=draft.pk) as change_set:
        errors = _write_all(changes, write, audit_actor)
    if errors:
        listed = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
        raise ConflictError(
            f"Draft {draft.pk} no longer applies to today's configuration; nothing "
            f"was applied. {listed}",
            fields=errors,
        )
    draft.status = DraftStatus.APPLIED
    draft.applied_version = change_set.version or config_version_current()
    draft.applied_by = actor
    draft.applied_at = timezone.now()
    draft.save()
    return draft


def draft_preview[T](
    *,
    changes: Sequence[DraftChange],
    write: ChangeWriter,
    read: Callable[[], T],
    skip_invalid: bool = False,
) -> T:
    """``read()`` as it sees today's configuration with ``changes`` applied.

    The changes are written as a validation writes them, in a transaction that
    is always rolled back (no version bump, no audit entry, no follow-up work:
    ``on_commit`` callbacks are dropped with it); ``read`` runs inside it, so
    what it returns must not be rows that leave it (plain values, snapshots).
    Raises Django's ``ValidationError`` keyed ``changes.<i>.<field>`` when a
    change no longer applies, unless ``skip_invalid`` (e.g. to prefill an edit
    form with the configuration as the draft's valid changes leave it).
    """
    with transaction.atomic(), config_change_set(dry_run=True):
        errors = _write_all(changes, write, _VALIDATION_ACTOR)
        if errors and not skip_invalid:
            transaction.set_rollback(True)
            raise DjangoValidationError(errors)
        value = read()
        transaction.set_rollback(True)
    return value
