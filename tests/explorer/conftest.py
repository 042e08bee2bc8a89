"""Explorer personas and helpers: a staff operator, a read-only viewer, decisions."""

from __future__ import annotations

from typing import Any

import pytest

from routing.pipeline import RoutingRequest
from routing.pipeline.rules import parse_privacy


@pytest.fixture
def staff_client(client, operator):  # type: ignore[no-untyped-def]
    """A browser session of a staff operator (may edit)."""
    client.force_login(operator)
    return client


@pytest.fixture
def viewer(django_user_model):  # type: ignore[no-untyped-def]
    """A logged-in user who is not staff: reads everything, edits nothing."""
    return django_user_model.objects.create_user(username="victor", password="pw-v")


@pytest.fixture
def viewer_client(client, viewer):  # type: ignore[no-untyped-def]
    client.force_login(viewer)
    return client


def record(model: str, *, privacy: str | None = None, request_id: str = "") -> Any:
    """Route one request for real (recorded) and return its decision row."""
    from routing.models import RoutingDecision
    from routing.services.routing import route_request

    outcome = route_request(
        request=RoutingRequest(
            model=model,
            body={"messages": [{"role": "user", "content": "x" * 400}]},
            privacy=parse_privacy(privacy) if privacy else None,
            sources={"privacy": "header"} if privacy else {},
        ),
        request_id=request_id or f"req-{model}",
        client="test",
    )
    return RoutingDecision.objects.get(pk=outcome.decision_id)
