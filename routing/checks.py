"""System check: refuse to start with a pipeline that cannot be built."""

from __future__ import annotations

from typing import Any

from django.core import checks

from routing.pipeline import PipelineConfigError


@checks.register()
def pipeline_is_valid(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``NEXUS_EXTRA_RECONCILERS`` must import, have unique names, keep selection last."""
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
    return []
