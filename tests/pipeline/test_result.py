"""The result: its JSON form, actionable errors, and no prompt text anywhere."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from routing.pipeline.types import HardLimitAction, Health, PolicySnapshot

from .fleet import budget, cloud, config, local, request, route

MARKER = "ZEBRA-7c1f-NEVER-LOG-ME"


def _only_plain_json(value: Any) -> bool:
    if value is None or type(value) in (str, int, float, bool):
        return True
    if type(value) is list:
        return all(_only_plain_json(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _only_plain_json(v) for k, v in value.items())
    return False


def test_a_decision_never_contains_the_prompt_text() -> None:
    cfg = config(local("a"), cloud("c"))
    for req in (
        request(text=MARKER),
        request(text=MARKER, privacy="restricted"),
        request("unknown-model", text=MARKER),
        request(text=MARKER, min_tier=5),
    ):
        result = route(cfg, req, budget(1, spent=0.9))
        assert MARKER not in json.dumps(result.to_dict())
        assert MARKER not in repr(result.annotations)


def test_a_route_has_every_contract_key_in_plain_json_types() -> None:
    cfg = config(local("a"), policies=(PolicySnapshot("all", "*"),))
    data = route(cfg, request(privacy="restricted", source="header")).to_dict()
    for key in (
        "outcome",
        "requested_model",
        "model",
        "annotations",
        "trace",
        "warnings",
        "backend",
        "score",
        "reason",
        "estimated_cost_usd",
        "requirements",
        "constraints",
        "matched_policies",
        "fallback_used",
        "models_tried",
        "pipeline_duration_us",
    ):
        assert key in data, key
    assert set(data["backend"]) == {
        "name",
        "base_url",
        "privacy_zone",
        "capability_tier",
    }
    for key in (
        "privacy_constraint",
        "required_tier",
        "tier_mode",
        "budget_status",
        "estimated_cost_usd",
        "scores",
        "privacy_excluded",
        "budget_excluded",
        "capability_excluded",
    ):
        assert key in data["annotations"], key
    assert set(data["trace"][0]) >= {
        "reconciler",
        "error_policy",
        "candidates_before",
        "candidates_after",
        "excluded",
        "duration_us",
        "error",
    }
    assert _only_plain_json(data)
    assert data["constraints"]["privacy"]["sources"] == ["header"]


def test_a_queue_carries_the_wait_and_the_fallback_backend() -> None:
    data = route(config(local("w", health=Health.LOADING)), request()).to_dict()
    assert data["outcome"] == "queue"
    assert {"estimated_wait_ms", "fallback_backend", "backend", "score"} <= set(data)


def test_a_reject_explains_every_exclusion_grouped_by_reconciler() -> None:
    cfg = config(
        local("off", enabled=False),
        cloud("c1"),
        cloud("c2"),
        local("small"),
    )
    result = route(
        cfg,
        request(min_tier=3),
        budget(10, spent=10, action=HardLimitAction.BLOCK_CLOUD),
    )
    data = result.to_dict()
    assert data["outcome"] == "reject"
    error = data["error"]
    assert error["type"] == "no_viable_backend"
    assert {r["backend"] for r in error["rejections"]} == {"off", "c1", "c2", "small"}
    assert {r["reconciler"] for r in error["rejections"]} == {
        "request_analyzer",
        "budget",
        "capability",
    }
    message = error["message"]
    assert message.index("request_analyzer") < message.index("budget")
    assert message.index("budget") < message.index("capability")
    assert "resets on 2026-12-01" in message
    # The budget action addresses two backends, so it comes first.
    assert "budget 'global'" in error["suggested_actions"][0]
    assert len(error["suggested_actions"]) == len(set(error["suggested_actions"]))


def test_result_attributes_are_readable_without_to_dict() -> None:
    result = route(config(cloud("c", price=1.0)), request(max_tokens=1000))
    assert result.backend_name == "c"
    assert result.estimated_cost_usd is not None and result.estimated_cost_usd > 0
    assert result.error_type is None
    assert result.excluded_by == ()
    assert result.fallback_used is False
    assert result.models_tried == ("llama3",)


def test_the_costly_json_pieces_are_built_once_and_a_changed_copy_builds_its_own() -> (
    None
):
    result = route(config(local("a"), local("b")), request(privacy="zone:cloud"))
    first, second = result.to_dict(), result.to_dict()
    for piece in ("trace", "annotations", "error"):
        assert first[piece] is second[piece], piece
    changed = replace(result, annotations={**result.annotations, "note": "x"})
    assert changed.to_dict()["annotations"]["note"] == "x"
    assert "note" not in result.to_dict()["annotations"]


def test_annotation_values_become_plain_json_whatever_their_type() -> None:
    from datetime import date

    from routing.pipeline.decision import jsonable

    class Flag(int):
        pass

    value = {
        "tier": Health.LOADING,
        "zones": {"b", "a"},
        "pair": (1, 0.123456789123),
        "bad": float("nan"),
        3: date(2026, 11, 27),
        "flag": Flag(1),
        "nested": [{"x": True, "y": None}],
        "other": object,
    }
    assert jsonable(value) == {
        "tier": Health.LOADING.value,
        "zones": ["a", "b"],
        "pair": [1, 0.12345679],
        "bad": None,
        "3": "2026-11-27",
        "flag": 1,
        "nested": [{"x": True, "y": None}],
        "other": str(object),
    }
    assert type(jsonable(value)["flag"]) is int
