"""The route API's 503 and 404 name the way out: models that would serve the
request, or the served name a typo probably meant."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.fleet_rows import chat

pytestmark = pytest.mark.django_db

IMAGE = [
    {"type": "text", "text": "What is in this picture?"},
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
]


def route(client: APIClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/api/v1/route", body, format="json", headers=headers)


def test_a_vision_request_to_a_text_model_names_the_models_that_would_serve_it(
    api_client: APIClient, fleet: Any
) -> None:
    body = chat("llama3.1:8b")
    body["messages"][0]["content"] = IMAGE
    response = route(api_client, body)
    assert response.status_code == 503, response.json()
    error = response.json()["error"]
    hint = "Models that would serve this request: 'gpt-4o'."
    assert hint in error["suggested_actions"]
    assert error["message"].endswith(hint)


def test_a_privacy_reject_names_the_models_that_pass_it(
    api_client: APIClient, fleet: Any
) -> None:
    response = route(api_client, chat("gpt-4o"), **{"X-Nexus-Privacy": "restricted"})
    assert response.status_code == 503, response.json()
    assert (
        "Models that would serve this request: 'llama3.1:8b'."
        in response.json()["error"]["suggested_actions"]
    )


def test_a_mistyped_model_gets_did_you_mean_in_the_404(
    api_client: APIClient, fleet: Any
) -> None:
    response = route(api_client, chat("llama3.1-8b"))
    assert response.status_code == 404, response.json()
    error = response.json()["error"]
    assert error["type"] == "model_not_found"
    assert error["suggested_actions"][0] == "Did you mean 'llama3.1:8b'?"
    assert "Did you mean 'llama3.1:8b'?" in error["message"]
