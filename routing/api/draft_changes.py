"""One draft change written exactly as the configuration API writes it.

``change_write`` is the ``ChangeWriter`` the API hands to the draft services:
the resource's own ViewSet serializer (create, or a partial update) and
``config_delete``, so a change is refused with the live edit's message.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import serializers

from routing.api import views
from routing.api.exceptions import flatten_detail, protected_message
from routing.errors import NexusError
from routing.services.config import config_delete
from routing.services.drafts import KINDS, DraftChange, lookup_field
from routing.services.health import OBSERVED_FIELDS

#: The configuration API's ViewSet of each resource a draft may change.
CONFIG_VIEWSETS: dict[str, type[views.ConfigViewSet]] = {
    "zones": views.ZoneViewSet,
    "backends": views.BackendViewSet,
    "aliases": views.AliasViewSet,
    "fallbacks": views.FallbackChainViewSet,
    "policies": views.PolicyViewSet,
    "budgets": views.BudgetViewSet,
}


def draft_fields(resource: str) -> list[str]:
    """The fields a draft may give for ``resource``: the configuration API's
    writable ones, without observed state."""
    serializer = CONFIG_VIEWSETS[resource].serializer_class()
    return [
        name
        for name, field in serializer.fields.items()
        if not field.read_only and name not in OBSERVED_FIELDS
    ]


def _field_errors(resource: str, fields: dict[str, Any]) -> dict[str, list[str]]:
    allowed = draft_fields(resource)
    errors: dict[str, list[str]] = {}
    for name in fields:
        if name in allowed:
            continue
        if name in OBSERVED_FIELDS:
            errors[name] = [
                "Observed state (written by probes and traffic), not "
                "configuration: a draft cannot set it."
            ]
        else:
            errors[name] = [
                f"Not a writable field of a {KINDS[resource]}; use "
                f"{', '.join(allowed)}."
            ]
    return errors


def _write(change: DraftChange, actor: str) -> None:
    viewset = CONFIG_VIEWSETS[change.resource]
    lookup = lookup_field(change.resource)
    serializer_class: Any = viewset.serializer_class
    context = {"actor": actor}
    fields = change.fields
    if change.action == "create":
        errors = _field_errors(change.resource, fields)
        if lookup in fields and fields[lookup] != change.name:
            errors["name"] = [
                f"The change names {change.name!r} but fields.{lookup} is "
                f"{fields[lookup]!r}; give the name once."
            ]
        if errors:
            raise DjangoValidationError(errors)
        serializer = serializer_class(
            data={**fields, lookup: change.name}, context=context
        )
    else:
        assert viewset.queryset is not None
        instance = viewset.queryset.filter(**{lookup: change.name}).first()
        if instance is None:
            raise DjangoValidationError(
                {
                    "name": [
                        f"No {KINDS[change.resource]} named {change.name!r} in "
                        "today's configuration with the draft's earlier changes."
                    ]
                }
            )
        if change.action == "delete":
            config_delete(instance=instance, actor=actor)
            return
        errors = _field_errors(change.resource, fields)
        if errors:
            raise DjangoValidationError(errors)
        serializer = serializer_class(
            instance, data=fields, partial=True, context=context
        )
    serializer.is_valid(raise_exception=True)
    serializer.save()


def change_write(change: DraftChange, actor: str) -> None:
    """Write ``change`` as ``actor`` through the configuration API's serializer.

    Refusals become Django ``ValidationError``s keyed by field, with the
    message the live edit gets (``privacy_zone``, ``models.0.name``,
    ``scope.zones``; ``name`` for an unknown object, a built-in one or one still
    in use).
    """
    try:
        _write(change, actor)
    except serializers.ValidationError as exc:
        raise DjangoValidationError(flatten_detail(exc.detail)) from None
    except NexusError as exc:  # e.g. renaming or deleting a built-in row
        raise DjangoValidationError(exc.fields or {"name": [exc.message]}) from None
    except ProtectedError as exc:
        raise DjangoValidationError({"name": [protected_message(exc)]}) from None
