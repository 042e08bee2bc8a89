"""POST /api/v1/route checks roles and content part types against the OpenAI
chat shape, answering 400 with the offending field named."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.api.routing_input import PART_TYPES, ROLES
from tests.fleet_rows import chat

pytestmark = pytest.mark.django_db


def route(client: APIClient, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/route", body, format="json")


def refused(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert field in error["fields"], error
    return error


def test_an_unknown_role_is_refused_naming_the_message_and_the_roles(
    api_client: APIClient, fleet: Any
) -> None:
    body = chat("llama3.1:8b")
    body["messages"].append({"role": "wizard", "content": "abracadabra"})
    error = refused(route(api_client, body), "messages.1.role")
    assert error["fields"]["messages.1.role"] == [
        "Unknown role 'wizard'; use one of system, user, assistant, tool, "
        "developer, function."
    ]
    assert "messages.1.role" in error["message"]


def test_every_openai_role_is_accepted(api_client: APIClient, fleet: Any) -> None:
    body = chat("llama3.1:8b")
    body["messages"] = [
        {"role": role, "content": None if role == "assistant" else "hi"}
        for role in ("system", "developer", "user", "assistant", "tool", "function")
    ]
    assert route(api_client, body).status_code == 200


def test_an_unknown_content_part_type_is_refused_naming_the_part(
    api_client: APIClient, fleet: Any
) -> None:
    body = chat("llama3.1:8b")
    body["messages"][0]["content"] = [
        {"type": "text", "text": "look"},
        {"type": "video_url", "video_url": {"url": "https://x/y.mp4"}},
    ]
    error = refused(route(api_client, body), "messages.0.content.1.type")
    message = error["fields"]["messages.0.content.1.type"][0]
    assert message.startswith("Unknown content part type 'video_url'; use one of text,")


def test_a_content_part_without_a_type_is_refused(
    api_client: APIClient, fleet: Any
) -> None:
    body = chat("llama3.1:8b")
    body["messages"][0]["content"] = [{"text": "no type"}]
    error = refused(route(api_client, body), "messages.0.content.0.type")
    assert "needs a 'type'" in error["fields"]["messages.0.content.0.type"][0]


def test_every_accepted_part_type_still_routes(
    api_client: APIClient, fleet: Any
) -> None:
    parts = [
        {"type": "text", "text": "hi"},
        {"type": "input_text", "text": "hi"},
        {"type": "refusal", "refusal": "no"},
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
        {"type": "file", "file": {"file_id": "f-1"}},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        {"type": "input_image", "image_url": "https://x/y.png"},
        {"type": "image", "source": {}},
    ]
    assert {p["type"] for p in parts} == set(PART_TYPES)
    assert set(ROLES) == {
        "system",
        "user",
        "assistant",
        "tool",
        "developer",
        "function",
    }
    body = chat("gpt-4o")
    body["messages"][0]["content"] = parts
    response = route(api_client, body)
    assert response.status_code == 200, response.json()
    assert response.json()["requirements"]["vision"] is True
