"""POST /api/v1/route: decisions as the contract describes, each recorded once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.models import DecisionExclusion, LedgerEntry, RoutingDecision
from routing.services.decision_templates import decision_view
from tests.fleet_rows import add_policy, chat, set_budget

pytestmark = pytest.mark.django_db


def route(client: APIClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/api/v1/route", body, format="json", headers=headers)


def test_a_restricted_request_routes_to_the_private_backend(
    api_client: APIClient, fleet: Any
) -> None:
    response = route(
        api_client, chat("llama3.1:8b"), **{"X-Nexus-Privacy": "restricted"}
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["outcome"] == "route"
    assert body["backend"] == {
        "name": "local-gpu",
        "base_url": "http://127.0.0.1:9/local-gpu",
        "privacy_zone": "local",
        "capability_tier": 3,
    }
    assert body["annotations"]["privacy_constraint"] == "restricted"
    privacy = next(e for e in body["trace"] if e["reconciler"] == "privacy")
    assert {e["backend"] for e in privacy["excluded"]} == {"cloud-llama"}
    assert privacy["error_policy"] == "fail_closed"


def test_every_response_carries_ids_and_the_contract_fields(
    api_client: APIClient, fleet: Any
) -> None:
    response = route(api_client, chat("llama3.1:8b"), **{"X-Request-ID": "req-42"})
    body = response.json()
    assert response["X-Request-ID"] == "req-42" == body["request_id"]
    assert response["X-Nexus-Decision-Id"] == body["decision_id"]
    for key in (
        "decision_id",
        "request_id",
        "outcome",
        "requested_model",
        "model",
        "annotations",
        "trace",
        "warnings",
        "score",
        "reason",
        "estimated_cost_usd",
    ):
        assert key in body
    assert [e["reconciler"] for e in body["trace"]] == [
        "request_analyzer",
        "privacy",
        "budget",
        "capability",
        "selection",
    ]
    for entry in body["trace"]:
        assert set(entry) >= {
            "reconciler",
            "error_policy",
            "candidates_before",
            "candidates_after",
            "excluded",
            "duration_us",
            "error",
        }


def test_a_request_id_is_generated_when_absent(
    api_client: APIClient, fleet: Any
) -> None:
    response = route(api_client, chat("llama3.1:8b"))
    assert len(response["X-Request-ID"]) == 32
    assert response.json()["request_id"] == response["X-Request-ID"]


def test_each_call_is_recorded_once_with_client_and_config_version(
    api_client: APIClient, fleet: Any
) -> None:
    body = route(api_client, chat("llama3.1:8b")).json()
    decision = RoutingDecision.objects.get()
    assert str(decision.pk) == body["decision_id"]
    assert decision.client == "svc"
    assert decision.config_version > 1
    assert decision.backend_name == body["backend"]["name"]


def test_the_prompt_text_is_never_stored(api_client: APIClient, fleet: Any) -> None:
    marker = "SECRET-PATIENT-NOTE-8731"
    route(api_client, chat("llama3.1:8b", text=f"Summarise {marker} please"))
    route(api_client, chat("no-such-model", text=marker))
    stored = json.dumps(list(RoutingDecision.objects.values()), default=str)
    assert RoutingDecision.objects.count() == 2
    assert marker not in stored


def test_no_viable_backend_is_a_503_with_every_rejection_and_actions(
    api_client: APIClient, fleet: Any
) -> None:
    body = chat("gpt-4o", nexus={"privacy": "restricted"})
    response = route(api_client, body)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "no_viable_backend"
    assert error["rejections"] == [
        {
            "backend": "cloud-gpt",
            "reconciler": "privacy",
            "reason": error["rejections"][0]["reason"],
            "suggested_action": error["rejections"][0]["suggested_action"],
            "model": "gpt-4o",
        }
    ]
    assert "privacy" in error["message"]
    assert error["suggested_actions"]
    decision = RoutingDecision.objects.get()
    assert decision.outcome == "reject"
    assert list(decision.exclusions.values_list("reconciler", flat=True)) == ["privacy"]


def test_an_unknown_model_is_a_404_and_still_recorded(
    api_client: APIClient, fleet: Any
) -> None:
    response = route(api_client, chat("llama-9000"))
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "model_not_found"
    decision = RoutingDecision.objects.get()
    assert (decision.outcome, decision.error_type) == ("reject", "model_not_found")


def test_a_policy_applies_even_through_headers_that_ask_for_less(
    api_client: APIClient, fleet: Any
) -> None:
    add_policy("llama-private", "llama*", privacy="restricted")
    response = route(
        api_client, chat("llama3.1:8b"), **{"X-Nexus-Privacy": "unrestricted"}
    )
    assert response.json()["backend"]["name"] == "local-gpu"


def test_a_tier_requirement_in_the_body_excludes_lower_tiers(
    api_client: APIClient, fleet: Any
) -> None:
    response = route(api_client, chat("llama3.1:8b", nexus={"min_tier": 4}))
    body = response.json()
    assert body["backend"]["name"] == "cloud-llama"
    assert "local-gpu" in body["annotations"]["capability_excluded"]


def test_dry_run_records_nothing_and_reserves_nothing(
    api_client: APIClient, fleet: Any
) -> None:
    set_budget("100")
    response = route(api_client, chat("gpt-4o", nexus={"dry_run": True}))
    assert response.status_code == 200
    assert response.json()["decision_id"] is None
    assert "X-Nexus-Decision-Id" not in response
    assert not RoutingDecision.objects.exists()
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "gpt-4o", "messages": "hi"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": [{"content": "hi"}]}, "messages.0.role"),
        (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]},
            "messages.0.content",
        ),
        (chat("gpt-4o", max_tokens=-3), "max_tokens"),
        (chat("gpt-4o", nexus={"privacy": "secret"}), "nexus.privacy"),
        (chat("gpt-4o", nexus={"min_tier": 9}), "nexus.min_tier"),
        (chat("gpt-4o", nexus={"tier_mode": "lenient"}), "nexus.tier_mode"),
        (chat("gpt-4o", nexus={"max_cost_usd": -1}), "nexus.max_cost_usd"),
        (chat("gpt-4o", nexus={"colour": "blue"}), "nexus.colour"),
        (chat("gpt-4o", nexus="restricted"), "nexus"),
        (chat("gpt-4o", tools="all"), "tools"),
    ],
)
def test_an_invalid_body_is_a_400_naming_the_field_and_records_nothing(
    api_client: APIClient, fleet: Any, body: dict[str, Any], field: str
) -> None:
    response = route(api_client, body)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert field in error["fields"], error
    assert not RoutingDecision.objects.exists()


def test_one_call_s_invalid_body_leaves_nothing_behind_for_the_next(
    api_client: APIClient, fleet: Any
) -> None:
    bad = route(api_client, chat("gpt-4o", max_tokens=-3, nexus={"min_tier": 9}))
    assert set(bad.json()["error"]["fields"]) == {"max_tokens", "nexus.min_tier"}
    good = route(api_client, chat("gpt-4o", nexus={"privacy": "unrestricted"}))
    assert good.status_code == 200, good.json()
    worse = route(api_client, {"model": "gpt-4o", "messages": []})
    assert set(worse.json()["error"]["fields"]) == {"messages"}


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-Nexus-Privacy": "kinda"}, "X-Nexus-Privacy"),
        ({"X-Nexus-Min-Tier": "six"}, "X-Nexus-Min-Tier"),
        ({"X-Nexus-Min-Tier": "0"}, "X-Nexus-Min-Tier"),
        ({"X-Nexus-Max-Cost": "-2"}, "X-Nexus-Max-Cost"),
        ({"X-Nexus-Strict": "maybe"}, "X-Nexus-Strict"),
        ({"X-Nexus-Strict": "true", "X-Nexus-Flexible": "true"}, "X-Nexus-Flexible"),
    ],
)
def test_invalid_headers_are_a_400_naming_the_header(
    api_client: APIClient, fleet: Any, headers: dict[str, str], field: str
) -> None:
    response = route(api_client, chat("llama3.1:8b"), **headers)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_body_and_header_disagreeing_on_privacy_is_refused(
    api_client: APIClient, fleet: Any
) -> None:
    body = chat("llama3.1:8b", nexus={"privacy": "restricted"})
    response = route(api_client, body, **{"X-Nexus-Privacy": "zone:cloud"})
    assert response.status_code == 400
    assert "nexus.privacy" in response.json()["error"]["fields"]


def test_body_and_header_tiers_combine_to_the_higher(
    api_client: APIClient, fleet: Any
) -> None:
    body = chat("llama3.1:8b", nexus={"min_tier": 2})
    response = route(api_client, body, **{"X-Nexus-Min-Tier": "4"})
    constraints = response.json()["constraints"]
    assert constraints["min_tier"]["value"] == 4
    assert response.json()["backend"]["name"] == "cloud-llama"


def test_routing_needs_an_api_key(fleet: Any) -> None:
    response = APIClient().post("/api/v1/route", chat("llama3.1:8b"), format="json")
    assert response.status_code == 401
    assert not RoutingDecision.objects.exists()


def test_exclusions_are_indexed_per_reconciler(
    api_client: APIClient, fleet: Any
) -> None:
    route(api_client, chat("llama3.1:8b"), **{"X-Nexus-Privacy": "restricted"})
    assert list(
        DecisionExclusion.objects.values_list("reconciler", "excluded_count")
    ) == [("privacy", 1)]


def test_the_pipeline_endpoint_lists_reconcilers_and_scorers_in_order(
    api_client: APIClient,
) -> None:
    response = api_client.get("/api/v1/pipeline/")
    assert response.json() == {
        "reconcilers": [
            {"name": "request_analyzer", "error_policy": "fail_closed"},
            {"name": "privacy", "error_policy": "fail_closed"},
            {"name": "budget", "error_policy": "fail_open"},
            {"name": "capability", "error_policy": "fail_open"},
            {"name": "selection", "error_policy": "fail_closed"},
        ],
        "scorers": [
            {"name": "priority", "weight": 0.4},
            {"name": "load", "weight": 0.25},
            {"name": "latency", "weight": 0.2},
            {"name": "errors", "weight": 0.15},
            {"name": "cost", "weight": 0.5},
        ],
        "strategy": "smart",
    }


def test_a_body_over_the_size_limit_is_a_json_400(
    api_client: APIClient, fleet: Any, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = route(api_client, chat("llama3.1:8b", text="x" * 20_000))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"
    assert not RoutingDecision.objects.exists()


@pytest.mark.parametrize("raw", ["{bad json", '{"model": NaN}', "[1, 2]", '"text"'])
def test_malformed_json_bodies_are_400_never_500(
    api_client: APIClient, fleet: Any, raw: str
) -> None:
    response = api_client.post("/api/v1/route", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


def test_form_encoded_bodies_are_415_in_the_error_shape(
    api_client: APIClient, fleet: Any
) -> None:
    response = api_client.post("/api/v1/route", {"model": "x"})
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "unsupported_media_type"


def test_an_indented_response_carries_the_same_decision_as_a_compact_one(
    api_client: APIClient, fleet: Any
) -> None:
    # Dry runs: a recorded route would count as in flight for the second call.
    body = {**chat("llama3.1:8b"), "nexus": {"dry_run": True}}
    compact = route(api_client, body, **{"X-Request-ID": "req-c"})
    indented = route(
        api_client,
        body,
        **{"X-Request-ID": "req-c", "Accept": "application/json; indent=2"},
    )
    assert b"\n  " in indented.content and b"\n" not in compact.content
    strip = {"decision_id", "pipeline_duration_us", "trace"}
    assert {k: v for k, v in indented.json().items() if k not in strip} == {
        k: v for k, v in compact.json().items() if k not in strip
    }


def test_a_non_ascii_model_name_is_answered_and_stored_as_sent(
    api_client: APIClient, fleet: Any
) -> None:
    response = route(api_client, chat("modèle-ü"))
    assert response.status_code == 404
    assert response.json()["requested_model"] == "modèle-ü"
    stored = RoutingDecision.objects.get(pk=response.json()["decision_id"])
    assert stored.requested_model == "modèle-ü"
    assert (
        decision_view(stored)["details"]["error"]["type"]
        == response.json()["error"]["type"]
    )
