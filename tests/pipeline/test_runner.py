"""The runner: validation, introspection, error policies, trace, loading."""

from __future__ import annotations

import pytest

from routing.pipeline import (
    DEFAULT_ORDER,
    PIPELINE_ERROR,
    PipelineBuilder,
    PipelineConfigError,
    ReconcilerPipeline,
    RoutingIntent,
    default_pipeline,
    default_reconcilers,
    load_reconciler,
)
from routing.pipeline.types import ErrorPolicy, Outcome

from .fleet import cloud, config, context, local, request


class Boom:
    """A reconciler that excludes one backend and then raises."""

    def __init__(self, policy: ErrorPolicy, name: str = "boom") -> None:
        self.name = name
        self.error_policy = policy

    def reconcile(self, intent: RoutingIntent) -> None:
        intent.exclude("a", "boom was here")
        intent.annotate("boom", True)
        raise RuntimeError("kaput")


def test_the_default_pipeline_runs_in_the_documented_order() -> None:
    pipeline = default_pipeline()
    assert pipeline.names == DEFAULT_ORDER
    assert pipeline.describe() == [
        {"name": "request_analyzer", "error_policy": "fail_closed"},
        {"name": "privacy", "error_policy": "fail_closed"},
        {"name": "budget", "error_policy": "fail_open"},
        {"name": "capability", "error_policy": "fail_open"},
        {"name": "selection", "error_policy": "fail_closed"},
    ]
    assert pipeline.get("privacy").name == "privacy"
    with pytest.raises(KeyError):
        pipeline.get("nope")


def test_a_pipeline_not_ending_with_selection_is_refused_clearly() -> None:
    reconcilers = default_reconcilers()
    with pytest.raises(
        PipelineConfigError, match="last reconciler must be 'selection'"
    ):
        ReconcilerPipeline(reconcilers[:-1])


def test_duplicate_reconciler_names_are_refused() -> None:
    reconcilers = default_reconcilers()
    with pytest.raises(PipelineConfigError, match="repeated: privacy"):
        ReconcilerPipeline([reconcilers[1], *reconcilers])


def test_something_that_is_not_a_reconciler_is_refused() -> None:
    with pytest.raises(PipelineConfigError, match="not a reconciler"):
        PipelineBuilder().with_defaults().add(object(), before="selection")  # type: ignore[arg-type]


def test_a_raising_fail_closed_reconciler_rejects_naming_it() -> None:
    pipeline = (
        PipelineBuilder()
        .with_defaults()
        .add(Boom(ErrorPolicy.FAIL_CLOSED), before="selection")
        .build()
    )
    result = pipeline.route(request(), context(config(local("a"), local("b"))))
    assert result.outcome is Outcome.REJECT
    assert result.error_type == PIPELINE_ERROR
    assert "'boom'" in (result.error_message or "")
    assert [e.reconciler for e in result.trace][-1] == "boom"


def test_a_raising_fail_open_reconciler_is_skipped_with_its_effects_undone() -> None:
    pipeline = default_pipeline(extra=[Boom(ErrorPolicy.FAIL_OPEN)])
    result = pipeline.route(request(), context(config(local("a"), local("b"))))
    assert result.outcome is Outcome.ROUTE
    assert result.backend_name == "a"
    entry = next(e for e in result.trace if e.reconciler == "boom")
    assert entry.error == "RuntimeError: kaput"
    assert entry.candidates_after == entry.candidates_before
    assert "boom" not in result.annotations
    assert any("'boom' failed" in w for w in result.warnings)


def test_the_trace_has_one_entry_per_reconciler_with_timings() -> None:
    result = default_pipeline().route(
        request(privacy="restricted"), context(config(local("a"), cloud("c")))
    )
    assert [e.reconciler for e in result.trace] == list(DEFAULT_ORDER)
    privacy = result.trace[1]
    assert privacy.candidates_before == ("a", "c")
    assert privacy.candidates_after == ("a",)
    assert [r.backend for r in privacy.excluded] == ["c"]
    assert all(e.duration_us >= 0 for e in result.trace)
    assert result.excluded_by == ("privacy",)
    assert result.duration_us > 0


def test_a_reject_stops_the_remaining_reconcilers() -> None:
    result = default_pipeline().route(request("nope"), context(config(local("a"))))
    assert [e.reconciler for e in result.trace] == ["request_analyzer"]


def test_load_reconciler_instantiates_a_class_by_dotted_path() -> None:
    reconciler = load_reconciler(
        "routing.pipeline.reconcilers.privacy.PrivacyReconciler"
    )
    assert reconciler.name == "privacy"


def test_load_reconciler_explains_what_is_wrong() -> None:
    with pytest.raises(PipelineConfigError, match="Cannot import module"):
        load_reconciler("no.such.module.Thing")
    with pytest.raises(PipelineConfigError, match="has no attribute"):
        load_reconciler("routing.pipeline.types.Nope")
    with pytest.raises(PipelineConfigError, match="not a reconciler"):
        load_reconciler("routing.pipeline.counters.InMemoryCounterStore")
    with pytest.raises(PipelineConfigError, match="dotted path"):
        load_reconciler("nodots")


def test_builder_can_remove_and_replace_reconcilers() -> None:
    builder = PipelineBuilder().with_defaults().remove("budget")
    assert "budget" not in builder.build().names
    replaced = builder.replace("privacy", Boom(ErrorPolicy.FAIL_CLOSED)).build()
    assert replaced.names[1] == "boom"
