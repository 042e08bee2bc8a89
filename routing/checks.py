"""System check: refuse to start with a pipeline that cannot be built."""

from __future__ import annotations

from typing import Any

from django.core import checks

from routing.pipeline import PipelineConfigError, SettingsError


@checks.register()
def pipeline_is_valid(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``NEXUS_EXTRA_RECONCILERS`` must import, have unique names, keep selection
    last; ``NEXUS_SCORERS`` must name scorers that load, with weights >= 0."""
    from routing.adapters import build_pipeline

    try:
        build_pipeline()
    except PipelineConfigError as exc:
        return [
            checks.Error(
                f"The routing pipeline cannot be built: {exc}",
                hint="Fix NEXUS_EXTRA_RECONCILERS (dotted paths of reconcilers).",
                id="nexus.E001",
            )
        ]
    except SettingsError as exc:
        return [
            checks.Error(
                f"The routing pipeline's scorers are invalid: {exc}",
                hint="Fix NEXUS_SCORERS: comma-separated 'name:weight' entries, a "
                "built-in name (priority, load, latency, errors, cost) or a dotted "
                "path of a scorer class, each weight >= 0.",
                id="nexus.E002",
            )
        ]
    return []


@checks.register("nexus")
def shared_state_is_usable(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """The rate-limit store answers: the embedded file must be writable (else the
    brakes would silently fail open for good); Redis may be down for a moment."""
    from django.conf import settings

    from routing.shared_state import RedisState, SharedState, SqliteState

    url = settings.NEXUS_REDIS_URL
    store: SharedState = (
        RedisState(url) if url else SqliteState(settings.NEXUS_SHARED_STATE_FILE)
    )
    try:
        store.hit("nexus:startup-check", window_seconds=1)
        store.reset("nexus:startup-check")
    except Exception as exc:  # noqa: BLE001 - any failure means unusable
        where = (
            f"Redis at NEXUS_REDIS_URL ({url})"
            if url
            else (f"the file {settings.NEXUS_SHARED_STATE_FILE}")
        )
        message = (
            f"The shared-state store ({where}) does not answer: {exc}. Login and "
            "API-key rate limits fail open while it does not."
        )
        if url:
            return [checks.Warning(message, id="nexus.W001")]
        return [
            checks.Error(
                message,
                hint="Make NEXUS_DATA_DIR writable, or set NEXUS_REDIS_URL.",
                id="nexus.E003",
            )
        ]
    return []
