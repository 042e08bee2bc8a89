"""Scorers: parsing NEXUS_SCORERS-style text, loading, weights and the picker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from routing.pipeline import (
    DEFAULT_SCORERS,
    PipelineSettings,
    RoutingIntent,
    SettingsError,
    default_pipeline,
)
from routing.pipeline.scorers import (
    CostScorer,
    PriorityScorer,
    ScorerConfigError,
    load_scorer,
    parse_scorers,
)
from routing.pipeline.types import BackendSnapshot

from .fleet import budget, cloud, config, context, local, request, route


class Newest:
    """A custom scorer: prefers names that sort last."""

    name = "newest"

    def score(
        self, candidates: Sequence[BackendSnapshot], intent: RoutingIntent
    ) -> Mapping[str, float]:
        ordered = sorted(b.name for b in candidates)
        return {n: i / max(len(ordered) - 1, 1) for i, n in enumerate(ordered)}


def test_scorer_text_parses_in_order_with_weights() -> None:
    assert parse_scorers(" priority:0.4, load:1 ,pkg.mod.Affinity:0.3,") == (
        ("priority", 0.4),
        ("load", 1.0),
        ("pkg.mod.Affinity", 0.3),
    )


@pytest.mark.parametrize(
    "text", ["priority", "priority:", "priority:-0.1", "priority:x", "load:inf"]
)
def test_a_bad_scorer_entry_is_refused_with_the_entry_named(text: str) -> None:
    with pytest.raises(ScorerConfigError, match=text.split(":")[0]):
        parse_scorers(text)


def test_repeated_scorers_are_refused() -> None:
    with pytest.raises(ScorerConfigError, match="repeat"):
        parse_scorers("load:1,load:2")
    with pytest.raises(SettingsError, match="repeat"):
        default_pipeline(
            PipelineSettings(scorers=(("priority", 1), (PriorityScorer(), 1)))
        )


def test_scorers_load_by_name_path_or_object() -> None:
    assert isinstance(load_scorer("cost"), CostScorer)
    assert load_scorer("tests.pipeline.test_scorers.Newest").name == "newest"
    scorer = Newest()
    assert load_scorer(scorer) is scorer
    with pytest.raises(ScorerConfigError, match="Unknown scorer 'speed'"):
        load_scorer("speed")
    with pytest.raises(ScorerConfigError, match="not a scorer"):
        load_scorer("tests.pipeline.fleet.ZONES")


def test_a_custom_scorer_weighs_in_and_is_described() -> None:
    fleet = config(local("alpha", priority=0), local("zulu", priority=60))
    assert route(fleet, request()).backend_name == "alpha"
    settings = PipelineSettings(scorers=(*DEFAULT_SCORERS, (Newest(), 5.0)))
    pipeline = default_pipeline(settings)
    assert [s["name"] for s in pipeline.describe_scorers()] == [
        "priority",
        "load",
        "latency",
        "errors",
        "cost",
        "newest",
    ]
    result = pipeline.route(request(), context(fleet))
    assert result.backend_name == "zulu"
    assert result.annotations["score_breakdown"]["zulu"]["newest"] == 1.0


def test_weights_override_configured_scorers_by_name() -> None:
    settings = PipelineSettings(weights={"priority": 2})
    described = default_pipeline(settings).describe_scorers()
    assert described[0] == {"name": "priority", "weight": 2.0}
    with pytest.raises(SettingsError, match="speed"):
        PipelineSettings(weights={"speed": 1})


def test_a_zero_weight_scorer_is_shown_but_does_not_count() -> None:
    fleet = config(local("a", priority=0, error_rate=0.9), local("b", priority=90))
    result = route(fleet, request(), weights={"priority": 0.0})
    assert result.backend_name == "b"
    assert result.annotations["score_breakdown"]["a"]["priority"] == 1.0
    assert result.annotations["scorer_weights"]["priority"] == 0.0


def test_the_optional_cost_scorer_counts_only_when_a_reconciler_asks() -> None:
    fleet = config(cloud("dear", price=1.0, priority=0), cloud("cheap", price=0.01))
    calm = route(fleet, request(), budget(100.0, spent=1.0))
    assert calm.backend_name == "dear"
    assert "cost" not in calm.annotations["scorer_weights"]
    tight = route(fleet, request(), budget(100.0, spent=90.0), weights={"cost": 5.0})
    assert tight.backend_name == "cheap"
    assert tight.annotations["scorer_weights"]["cost"] == 5.0
