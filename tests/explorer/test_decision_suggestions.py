"""The decision page shows the way out of a reject: the models that would serve
it, or "did you mean" for a mistyped model."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.fleet_rows import chat

pytestmark = pytest.mark.django_db


def decision_page(api_client: Any, staff_client: Any, body: dict[str, Any]) -> str:
    response = api_client.post("/api/v1/route", body, format="json")
    decision_id = response.json()["decision_id"]
    assert decision_id, response.json()
    page = staff_client.get(reverse("explorer:decision", args=[decision_id]))
    assert page.status_code == 200
    return page.content.decode()


def test_a_vision_reject_names_the_models_that_would_serve_it(
    api_client, staff_client, fleet
):
    body = chat("llama3.1:8b")
    body["messages"][0]["content"] = [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    ]
    html = decision_page(api_client, staff_client, body)
    assert "<li>Models that would serve this request: &#x27;gpt-4o&#x27;.</li>" in html


def test_a_mistyped_model_shows_did_you_mean(api_client, staff_client, fleet):
    html = decision_page(api_client, staff_client, chat("llama3.1-8b"))
    assert "<li>Did you mean &#x27;llama3.1:8b&#x27;?</li>" in html
