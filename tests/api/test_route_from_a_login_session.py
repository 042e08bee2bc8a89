"""A logged-in person may route through the API too; the decision names them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from routing.models import RoutingDecision

pytestmark = pytest.mark.django_db


def test_a_session_with_the_longest_username_routes_and_is_recorded(
    django_user_model: Any, fleet: Any
) -> None:
    name = "u" * 150  # Django's longest username
    user = django_user_model.objects.create_user(username=name, password="pw")
    client = Client()
    client.force_login(user)
    response = client.post(
        "/api/v1/route",
        {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]},
        content_type="application/json",
    )
    assert response.status_code in (200, 503), response.content
    decision = RoutingDecision.objects.get(pk=response.json()["decision_id"])
    assert decision.client == f"user:{name}"
