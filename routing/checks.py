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
