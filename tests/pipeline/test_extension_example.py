"""The custom reconciler example in docs/pipeline.md works as documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from routing.pipeline import PipelineBuilder, Reconciler, default_pipeline
from routing.pipeline.types import Outcome

from .fleet import config, context, local, request

DOC = Path(__file__).resolve().parents[2] / "docs" / "pipeline.md"


def _example_class() -> Any:
    text = DOC.read_text()
    match = re.search(r"```python\n# example: error_rate_guard\n(.*?)```", text, re.S)
    assert match, "the example is missing from docs/pipeline.md"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)  # noqa: S102
    return namespace["ErrorRateGuard"]


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
