"""Reconcilers used by the settings-driven extension tests."""

from __future__ import annotations

from routing.pipeline import RoutingIntent
from routing.pipeline.types import ErrorPolicy


class NoCloud:
    """Excludes every backend outside the ``local`` zone."""

    name = "no_cloud"
    error_policy = ErrorPolicy.FAIL_CLOSED

    def reconcile(self, intent: RoutingIntent) -> None:
        for backend in intent.candidate_list():
            if backend.privacy_zone != "local":
                intent.exclude(backend.name, "cloud is switched off", "Use local.")


class PretendSelection:
    """A reconciler that wrongly claims the name ``selection``."""

    name = "selection"
    error_policy = ErrorPolicy.FAIL_CLOSED

    def reconcile(self, intent: RoutingIntent) -> None:
        return None
