"""Scorers used by the settings-driven extension tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from routing.pipeline import RoutingIntent
from routing.pipeline.types import BackendSnapshot


class PreferLocal:
    """1 for backends in the ``local`` zone, 0 elsewhere."""

    name = "prefer_local"

    def score(
        self, candidates: Sequence[BackendSnapshot], intent: RoutingIntent
    ) -> Mapping[str, float]:
        return {b.name: float(b.privacy_zone == "local") for b in candidates}
