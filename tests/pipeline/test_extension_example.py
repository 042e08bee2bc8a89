"""The custom reconciler and scorer examples in docs/pipeline.md work as documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from routing.pipeline import PipelineBuilder, Reconciler, default_pipeline
from routing.pipeline.types import Outcome

from .fleet import backend as cloud_backend
from .fleet import config, context, local, request

DOC = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"


def _example(label: str, name: str) -> Any:
    text = DOC.read_text()
    match = re.search(rf"```python\n# example: {label}\n(.*?)```", text, re.S)
    assert match, f"the {label} example is missing from docs/pipeline.md"
    code = match.group(1)
    assert len(code.strip().splitlines()) < 30, f"the {label} example is too long"
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102
    return namespace[name]


def _example_class() -> Any:
    return _example("error_rate_guard", "ErrorRateGuard")


FLEET = config(
    local("flaky", error_rate=0.6, priority=0),
    local("steady", error_rate=0.01, priority=60),
)


def test_the_documented_reconciler_satisfies_the_protocol() -> None:
    assert isinstance(_example_class()(), Reconciler)


def test_the_documented_reconciler_excludes_error_prone_backends() -> None:
    guard = _example_class()
    pipeline = (
        PipelineBuilder().with_defaults().add(guard(), before="selection").build()
    )
    assert pipeline.names[-2:] == ("error_rate_guard", "selection")
    result = pipeline.route(request(), context(FLEET))
    assert result.backend_name == "steady"
    assert result.excluded_by == ("error_rate_guard",)
    assert "flaky" in result.annotations["error_rate_guard_excluded"]


def test_removing_the_example_restores_the_default_behaviour() -> None:
    builder = (
        PipelineBuilder().with_defaults().add(_example_class()(), before="selection")
    )
    assert builder.build().route(request(), context(FLEET)).backend_name == "steady"
    restored = builder.remove("error_rate_guard").build()
    assert restored.names == default_pipeline().names
    result = restored.route(request(), context(FLEET))
    assert result.outcome is Outcome.ROUTE
    assert result.backend_name == "flaky"  # priority 0 wins without the guard
    assert result.excluded_by == ()


def test_the_documented_reconciler_is_written_on_exclude_failing() -> None:
    text = DOC.read_text()
    example = text.split("# example: error_rate_guard")[1].split("```")[0]
    assert "intent.exclude_failing(too_many_errors" in example


def test_the_documented_scorer_takes_part_with_its_weight() -> None:
    from routing.pipeline import DEFAULT_SCORERS, PipelineSettings
    from routing.pipeline.protocols import Scorer

    affinity = _example("zone_affinity", "ZoneAffinity")
    assert isinstance(affinity(), Scorer)
    fleet = config(
        local("near", priority=90), cloud_backend("far", priority=0, zone="cloud")
    )
    plain = default_pipeline().route(request(), context(fleet))
    assert plain.backend_name == "far"  # priority 0 wins without the scorer
    settings = PipelineSettings(scorers=(*DEFAULT_SCORERS, (affinity(), 2.0)))
    pipeline = default_pipeline(settings)
    assert pipeline.describe_scorers()[-1] == {"name": "zone_affinity", "weight": 2.0}
    result = pipeline.route(request(), context(fleet))
    assert result.backend_name == "near"
    assert result.annotations["score_breakdown"]["near"]["zone_affinity"] == 1.0
    assert result.annotations["score_breakdown"]["far"]["zone_affinity"] == 0.0
    assert result.annotations["scorer_weights"]["zone_affinity"] == 2.0
