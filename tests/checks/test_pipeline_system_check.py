"""Custom reconcilers come from settings; a broken pipeline stops start-up."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from rest_framework.test import APIClient

from routing.adapters import shared_pipeline_reset
from routing.checks import pipeline_is_valid
from tests.fleet_rows import chat


@pytest.fixture(autouse=True)
def _fresh_pipeline() -> Any:
    shared_pipeline_reset()
    yield
    shared_pipeline_reset()


def test_the_default_pipeline_passes_the_check() -> None:
    assert pipeline_is_valid() == []


@pytest.mark.parametrize(
    ("paths", "words"),
    [
        (["tests.checks.nowhere.Missing"], "tests.checks.nowhere.Missing"),
        (["tests.checks.sample_reconcilers.PretendSelection"], "selection"),
        (
            ["tests.checks.sample_reconcilers.NoCloud"] * 2,
            "no_cloud",
        ),
    ],
)
def test_a_broken_pipeline_is_an_error_naming_the_problem(
    settings: Any, paths: list[str], words: str
) -> None:
    settings.NEXUS_EXTRA_RECONCILERS = paths
    [error] = pipeline_is_valid()
    assert isinstance(error, checks.Error)
    assert error.id == "nexus.E001"
    assert words in error.msg


@pytest.mark.django_db
def test_the_check_is_registered_with_django(settings: Any) -> None:
    settings.NEXUS_EXTRA_RECONCILERS = ["tests.checks.nowhere.Missing"]
    ids = [message.id for message in checks.run_checks()]
    assert "nexus.E001" in ids


@pytest.mark.django_db
def test_a_configured_reconciler_takes_part_in_routing(
    settings: Any, api_client: APIClient, fleet: Any
) -> None:
    settings.NEXUS_EXTRA_RECONCILERS = ["tests.checks.sample_reconcilers.NoCloud"]
    described = api_client.get("/api/v1/pipeline/").json()
    stages = [stage["name"] for stage in described["reconcilers"]]
    assert stages == [
        "request_analyzer",
        "privacy",
        "budget",
        "capability",
        "no_cloud",
        "selection",
    ]
    body = api_client.post("/api/v1/route", chat("gpt-4o"), format="json").json()
    assert body["outcome"] == "reject"
    assert body["error"]["rejections"][0]["reconciler"] == "no_cloud"
    assert "no_cloud_excluded" in body["annotations"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("priority:0.4,tests.checks.nowhere.Missing:0.3", "tests.checks.nowhere"),
        ("priority:-1", "priority:-1"),
        ("priority", "'priority'"),
        ("speed:1", "speed"),
        ("tests.checks.sample_reconcilers.NoCloud:1", "not a scorer"),
        ("priority:1,priority:2", "priority"),
    ],
)
def test_a_bad_scorer_setting_is_an_error_naming_the_entry(
    settings: Any, value: str, words: str
) -> None:
    settings.NEXUS_SCORERS = value
    [error] = pipeline_is_valid()
    assert isinstance(error, checks.Error)
    assert error.id == "nexus.E002"
    assert words in error.msg


@pytest.mark.django_db
def test_a_configured_scorer_takes_part_in_routing(
    settings: Any, api_client: APIClient, fleet: Any
) -> None:
    settings.NEXUS_SCORERS = "priority:0.1,tests.checks.sample_scorers.PreferLocal:5"
    assert pipeline_is_valid() == []
    described = api_client.get("/api/v1/pipeline/").json()
    assert described["scorers"] == [
        {"name": "priority", "weight": 0.1},
        {"name": "prefer_local", "weight": 5.0},
    ]
    body = api_client.post("/api/v1/route", chat("llama3.1:8b"), format="json").json()
    assert body["outcome"] == "route"
    assert body["backend"]["privacy_zone"] == "local"
    breakdown = body["annotations"]["score_breakdown"]
    assert set(next(iter(breakdown.values()))) == {"priority", "prefer_local"}
    assert body["annotations"]["scorer_weights"] == {
        "priority": 0.1,
        "prefer_local": 5.0,
    }
