"""The served WSGI handler: REST API calls with a key skip the browser middleware."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import RequestFactory

from nexus_site.handlers import BROWSER_ONLY, NexusWSGIHandler
from routing.models import RoutingDecision

pytestmark = pytest.mark.django_db

ROUTE_BODY = json.dumps(
    {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]}
)


@contextmanager
def _connections_kept() -> Iterator[None]:
    """As Django's test client: the request signals leave the test's
    transaction (and its connection) alone."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _call(handler: Callable[..., Any], environ: dict[str, Any]) -> tuple[int, bytes]:
    status: list[str] = []
    with _connections_kept():
        body = b"".join(handler(environ, lambda s, h: status.append(s)))
    return int(status[0].split()[0]), body


def _middleware_of(handler: Any) -> list[str]:
    """The classes of a loaded middleware chain, outermost first."""
    names: list[str] = []
    layer = handler._middleware_chain
    while layer is not None:
        middleware = getattr(layer, "__wrapped__", layer)
        if not hasattr(middleware, "get_response"):
            break
        cls = type(middleware)
        names.append(f"{cls.__module__}.{cls.__qualname__}")
        layer = middleware.get_response
    return names


def test_the_lean_chain_has_none_of_the_browser_middleware() -> None:
    handler = NexusWSGIHandler()
    full, lean = _middleware_of(handler), _middleware_of(handler._lean)
    assert set(full) >= BROWSER_ONLY
    assert not BROWSER_ONLY & set(lean)
    assert lean == [name for name in full if name not in BROWSER_ONLY]


def test_a_keyed_route_call_is_answered_and_recorded_as_through_the_full_chain(
    fleet: Any, api_client: Any
) -> None:
    key = api_client._credentials["HTTP_AUTHORIZATION"]
    answers = []
    for handler in (NexusWSGIHandler(), WSGIHandler()):
        request = RequestFactory().post(
            "/api/v1/route",
            ROUTE_BODY,
            content_type="application/json",
            HTTP_AUTHORIZATION=key,
        )
        status, body = _call(handler, request.environ)
        answer = json.loads(body)
        answers.append((status, answer["outcome"], answer["backend"]["name"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200
    assert RoutingDecision.objects.count() == 2


def test_a_malformed_authorization_header_is_refused_on_the_lean_chain(
    fleet: Any,
) -> None:
    request = RequestFactory().post(
        "/api/v1/route",
        ROUTE_BODY,
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic Zm9vOmJhcg==",
    )
    status, body = _call(NexusWSGIHandler(), request.environ)
    assert status == 401
    assert json.loads(body)["error"]["message"] == (
        "Authorization header must be 'Bearer <api key>'."
    )


def test_a_browser_request_still_goes_through_login(db: None) -> None:
    request = RequestFactory().get("/")
    status, _ = _call(NexusWSGIHandler(), request.environ)
    assert status == 302  # to the login page: the session and login middleware ran
