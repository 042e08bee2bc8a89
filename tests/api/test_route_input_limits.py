"""POST /api/v1/route refuses input that would cost far more than a normal call:
long model names, too many messages or content parts, numbers in odd syntax."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.fleet_rows import add_policy, chat

pytestmark = pytest.mark.django_db


def route(client: APIClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/api/v1/route", body, format="json", headers=headers)


def assert_refused(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert field in error["fields"], error
    return error


def text_parts(count: int) -> list[dict[str, str]]:
    return [{"type": "text", "text": "hi"}] * count


@pytest.mark.parametrize(
    ("pattern", "model"),
    [("*-*-*-*-*-mini", "-" * 200), ("*" * 150 + "x", "-" * 200)],
)
def test_a_worst_case_policy_glob_and_model_name_route_in_under_10_ms(
    api_client: APIClient, fleet: Any, pattern: str, model: str
) -> None:
    add_policy("pathological", pattern)
    response = route(api_client, chat(model))
    assert response.status_code == 404, response.json()  # nobody serves the model
    pipeline_us = sum(entry["duration_us"] for entry in response.json()["trace"])
    assert pipeline_us < 10_000


def test_a_model_name_over_200_characters_is_refused_naming_model(
    api_client: APIClient, fleet: Any
) -> None:
    error = assert_refused(route(api_client, chat("m" * 201)), "model")
    assert "200 characters" in error["fields"]["model"][0]


def test_more_messages_than_the_limit_are_refused_naming_messages(
    api_client: APIClient, fleet: Any, settings: Any
) -> None:
    settings.NEXUS_MAX_MESSAGES = 3
    body = chat("llama3.1:8b")
    body["messages"] *= 3
    assert route(api_client, body).status_code == 200
    body["messages"] *= 2
    error = assert_refused(route(api_client, body), "messages")
    assert "At most 3 messages" in error["message"]


def test_the_default_limit_is_1024_messages(api_client: APIClient, fleet: Any) -> None:
    body = chat("llama3.1:8b")
    body["messages"] *= 1025
    assert_refused(route(api_client, body), "messages")


def test_more_content_parts_than_the_limit_are_refused_naming_the_message(
    api_client: APIClient, fleet: Any, settings: Any
) -> None:
    settings.NEXUS_MAX_CONTENT_PARTS = 4
    body = chat("llama3.1:8b")
    body["messages"] = [
        {"role": "user", "content": text_parts(2)},
        {"role": "assistant", "content": "plain text is not a part"},
        {"role": "user", "content": text_parts(2)},
    ]
    assert route(api_client, body).status_code == 200
    body["messages"].append({"role": "user", "content": text_parts(1)})
    error = assert_refused(route(api_client, body), "messages.3.content")
    assert "At most 4 content parts" in error["message"]


def test_the_default_limit_is_1024_content_parts_in_one_request(
    api_client: APIClient, fleet: Any
) -> None:
    body = chat("llama3.1:8b")
    body["messages"][0]["content"] = text_parts(1025)
    assert_refused(route(api_client, body), "messages.0.content")


ODD_NUMBERS = ["1_0", "inf", "nan", "1e1", " 10", "+10", "0x10", "\u0661\u0660", "10."]


@pytest.mark.parametrize("raw", ODD_NUMBERS)
def test_a_cost_cap_header_must_be_a_plain_decimal_number(
    api_client: APIClient, fleet: Any, raw: str
) -> None:
    response = route(api_client, chat("llama3.1:8b"), **{"X-Nexus-Max-Cost": raw})
    assert_refused(response, "X-Nexus-Max-Cost")


@pytest.mark.parametrize("raw", ["0.05", "10", "0.000001"])
def test_a_plain_cost_cap_header_is_accepted(
    api_client: APIClient, fleet: Any, raw: str
) -> None:
    response = route(api_client, chat("llama3.1:8b"), **{"X-Nexus-Max-Cost": raw})
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize("raw", ["0_3", "+3", "3.0", "\u0663", " 3"])
def test_a_min_tier_header_must_be_a_plain_whole_number(
    api_client: APIClient, fleet: Any, raw: str
) -> None:
    response = route(api_client, chat("llama3.1:8b"), **{"X-Nexus-Min-Tier": raw})
    assert_refused(response, "X-Nexus-Min-Tier")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"max_tokens": "1_000"}, "max_tokens"),
        ({"nexus": {"max_cost_usd": "1_0"}}, "nexus.max_cost_usd"),
        ({"nexus": {"min_tier": "0_3"}}, "nexus.min_tier"),
    ],
)
def test_a_number_sent_as_a_string_in_the_body_must_be_plain(
    api_client: APIClient, fleet: Any, extra: dict[str, Any], field: str
) -> None:
    assert_refused(route(api_client, chat("llama3.1:8b", **extra)), field)


def test_a_usage_report_number_must_be_plain(api_client: APIClient) -> None:
    report = {
        "decision_id": "00000000-0000-4000-8000-000000000000",
        "input_tokens": "1_0",
        "output_tokens": 1,
        "cost_usd": "1e-3",
    }
    response = api_client.post("/api/v1/usage", report, format="json")
    error = assert_refused(response, "input_tokens")
    assert "cost_usd" in error["fields"]


def test_a_configuration_number_must_be_plain(
    admin_api_client: APIClient, fleet: Any
) -> None:
    response = admin_api_client.patch(
        "/api/v1/backends/local-gpu/", {"priority": "1_0"}, format="json"
    )
    assert_refused(response, "priority")
    response = admin_api_client.patch(
        "/api/v1/backends/local-gpu/", {"priority": "10"}, format="json"
    )
    assert response.status_code == 200, response.json()
