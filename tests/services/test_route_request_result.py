"""route_request hands back the pipeline's typed result; the row stores its pieces.

The JSON is built once, by whoever answers (``result.to_dict()``); the decision
row holds the same pieces, column by column, as it did when the service passed
that dict down.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.adapters import config_snapshot
from routing.models import Budget, RoutingDecision
from routing.pipeline import RoutingRequest, RoutingResult, failure_result
from routing.pipeline.types import ConfigSnapshot, Health
from routing.services.decision_templates import decision_view
from routing.services.decisions import COLUMNS, decision_columns
from routing.services.routing import route_request
from tests.fleet_rows import chat, set_budget
from tests.pipeline.fleet import backend, cloud, config, local, offer, request, route

JSON_COLUMNS = ("requirements", "constraints", "annotations", "trace", "warnings")


def stored_before(payload: dict[str, Any]) -> dict[str, Any]:
    """The row's columns as the service computed them from the dict it passed
    down (the code this change replaced), for comparison."""
    error = payload.get("error") or {}
    backend = payload.get("backend") or {}
    cost = payload.get("estimated_cost_usd")
    return {
        "sample": False,  # a routed call is never a sample (generate_decisions)
        "outcome": payload["outcome"],
        "error_type": error.get("type") or "",
        "requested_model": payload["requested_model"][:200],
        "model": payload["model"][:200],
        "backend_name": backend.get("name", ""),
        "score": payload.get("score"),
        "estimated_cost_usd": Decimal(str(cost)) if cost is not None else None,
        "reason": payload.get("reason") or "",
        "fallback_used": payload.get("fallback_used", False),
        "pipeline_duration_us": payload.get("pipeline_duration_us", 0.0),
        "requirements": payload.get("requirements", {}),
        "constraints": payload.get("constraints", {}),
        "annotations": payload.get("annotations", {}),
        "trace": payload.get("trace", []),
        "warnings": payload.get("warnings", []),
        "attempts": [],
        "details": {k: v for k, v in payload.items() if k not in COLUMNS},
    }


GPT = offer("gpt-4o", input_cost_per_1k=0.0025, output_cost_per_1k=0.01)
RESULTS = {
    "route": lambda: route(
        config(cloud("c", model="gpt-4o"), local("l"), local("m", models=(GPT,))),
        request("gpt-4o", privacy="restricted"),
    ),
    "queue": lambda: route(
        config(local("w", health=Health.LOADING, loading_eta_ms=4000)), request()
    ),
    "no viable backend, after a fallback": lambda: route(
        config(cloud("c", model="gpt-4o"), backend("b", zone="cloud")),
        request("gpt-4o", privacy="restricted"),
    ),
    "model not found": lambda: route(config(local("l")), request("no-such-model")),
    "pipeline failure": lambda: failure_result(RoutingRequest("x"), "KeyError"),
}


@pytest.mark.parametrize("case", list(RESULTS))
def test_each_column_holds_what_the_dict_passed_down_used_to_give(case: str) -> None:
    result: RoutingResult = RESULTS[case]()
    columns = decision_columns(result)
    before = stored_before(result.to_dict())
    assert columns == before
    for name in (*JSON_COLUMNS, "details"):  # the same text, key order included
        assert json.dumps(columns[name]) == json.dumps(before[name]), name


@pytest.fixture
def fleet_and_budget(fleet: Any, request: pytest.FixtureRequest) -> None:
    if request.param:
        # Soft limit 0.125: the pipeline reads "normal"; this call's 0.0125
        # estimate, once reserved, reaches it.
        set_budget("0.25", soft_limit_percent=50)
        Budget.objects.filter(name="global").update(spent_usd=Decimal("0.115"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "privacy", "fleet_and_budget", "outcome", "label"),
    [
        ("gpt-4o", None, False, "route", None),
        ("gpt-4o", None, True, "route", "soft_limit"),
        ("gpt-4o", "restricted", False, "reject", None),
        ("no-such-model", None, False, "reject", None),
    ],
    indirect=["fleet_and_budget"],
)
def test_route_request_answers_with_the_result_whose_pieces_it_stored(
    fleet_and_budget: None,
    model: str,
    privacy: str | None,
    outcome: str,
    label: str | None,
) -> None:
    answered = route_request(
        request=request(model, text="x" * 4000, privacy=privacy, max_tokens=1000),
        request_id="req-typed",
        client="svc",
    )
    result = answered.result
    assert isinstance(result, RoutingResult)
    assert result.outcome == outcome
    if label is not None:  # relabelled after the reservation, as stored
        assert result.annotations["budget_status"] == label
    row = RoutingDecision.objects.get(pk=answered.decision_id)
    data = result.to_dict()
    view = decision_view(row)  # the stored form, expanded
    for name in JSON_COLUMNS:
        assert view[name] == data[name], name
    assert view["details"] == {k: v for k, v in data.items() if k not in COLUMNS}
    assert (row.outcome, row.requested_model, row.model) == (
        data["outcome"],
        data["requested_model"],
        data["model"],
    )
    assert row.backend_name == data.get("backend", {}).get("name", "")
    assert row.error_type == data.get("error", {}).get("type", "")
    assert row.pipeline_duration_us == data["pipeline_duration_us"]
    cost = data.get("estimated_cost_usd")
    assert row.estimated_cost_usd == (Decimal(str(cost)) if cost else None)


def broken_snapshot(versions: tuple[int, int] | None = None) -> ConfigSnapshot:
    """A snapshot the pipeline cannot index: route() raises outside any reconciler."""
    config = config_snapshot(versions)
    first = replace(config.backends[0], models=None)  # type: ignore[arg-type]
    return replace(config, backends=(first, *config.backends[1:]))


FAILED = {
    "outcome": "reject",
    "requested_model": "gpt-4o",
    "model": "gpt-4o",
    "error": {
        "type": "pipeline_error",
        "message": "The routing pipeline failed (AttributeError); the request was not "
        "routed. Operators: see the server log.",
        "fields": {},
        "rejections": [],
        "suggested_actions": ["Retry; if it persists, report the request id."],
    },
    "requirements": {},
    "constraints": {},
    "matched_policies": [],
    "fallback_used": False,
    "models_tried": [],
    "annotations": {},
    "trace": [],
    "warnings": [],
    "pipeline_duration_us": 0.0,
}


@pytest.mark.django_db
def test_a_pipeline_failure_outside_any_reconciler_is_recorded_and_answered_as_before(
    api_client: APIClient,
    fleet: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("routing.services.routing.config_snapshot", broken_snapshot)
    with caplog.at_level(logging.ERROR, logger="routing.services.routing"):
        response = api_client.post(
            "/api/v1/route",
            chat("gpt-4o"),
            format="json",
            headers={"X-Request-ID": "req-broken"},
        )
    assert response.status_code == 503
    body = response.json()
    decision_id = response["X-Nexus-Decision-Id"]
    expected = {"decision_id": decision_id, "request_id": "req-broken", **FAILED}
    assert body == expected
    assert list(body) == list(expected)
    assert list(body["error"]) == list(FAILED["error"])
    assert "routing pipeline failed" in caplog.text
    assert "AttributeError" in caplog.text  # the traceback is in the server log
    row = RoutingDecision.objects.get(pk=decision_id)
    assert (row.outcome, row.error_type, row.backend_name) == (
        "reject",
        "pipeline_error",
        "",
    )
    assert decision_view(row)["details"] == {
        k: FAILED[k] for k in ("error", "matched_policies", "models_tried")
    }
    view = decision_view(row)
    assert tuple(view[k] for k in JSON_COLUMNS[:4]) == (
        {},
        {},
        {},
        [],
    )
