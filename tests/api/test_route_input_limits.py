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
