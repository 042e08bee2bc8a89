"""Saving a backend together with the list of models it serves."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from routing.models import Backend, BackendModel
from routing.services.config import config_delete, config_save
from routing.services.health import backend_observed_set, backend_probe_soon

#: A change to any of these makes the backend worth probing right away.
PROBE_AFTER_CHANGE = {"base_url", "kind", "enabled"}


@transaction.atomic
def backend_save(
    *,
    backend: Backend,
    models: list[dict[str, Any]] | None,
    actor: str,
    observed: Mapping[str, object] | None = None,
) -> Backend:
    """Save ``backend``; when ``models`` is given, make its served models exactly that.

    The one way the API, the explorer and the admin save a backend: a change
    of URL, kind or ``enabled`` schedules a probe after the commit.

    Models are matched by name: new ones are created, changed ones updated,
    missing ones deleted, each change audited. ``observed`` values (health,
    load, latency, error rate) are then stored as a probe result is
    (``backend_observed_set``); a bad one rolls the whole save back.
    """
    entries = config_save(instance=backend, actor=actor)
    if any(entry.field in PROBE_AFTER_CHANGE for entry in entries):
        backend_probe_soon(backend_id=backend.pk, backend_name=backend.name)
    if models is not None:
        _models_replace(backend=backend, models=models, actor=actor)
    if observed:
        backend_observed_set(backend=backend, values=observed)
    return backend


def _models_replace(
    *, backend: Backend, models: list[dict[str, Any]], actor: str
) -> None:
    names = [offer["name"] for offer in models]
    if len(set(names)) != len(names):
        raise ValidationError({"models": ["Each model may be listed only once."]})
    existing = {offer.name: offer for offer in backend.models.all()}
    for name, offer in existing.items():
        if name not in names:
            config_delete(instance=offer, actor=actor)
    for values in models:
        offer = existing.get(values["name"]) or BackendModel(backend=backend)
        for field, value in values.items():
            setattr(offer, field, value)
        config_save(instance=offer, actor=actor)


def backend_api_key_set(*, backend: Backend) -> bool:
    """Whether the environment variable named by ``api_key_env`` is set (and not
    empty) in this process. The key itself is never returned or kept."""
    return bool(backend.api_key_env) and bool(os.environ.get(backend.api_key_env))
