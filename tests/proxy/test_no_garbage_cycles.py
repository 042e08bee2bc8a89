"""A proxied call's objects are freed by reference counting, not left in
reference cycles for the garbage collector (whose full collections then stall
the event loop for tens of milliseconds under load; see nexus_site/asgi.py)."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.proxy.conftest import MODEL, register, stream_post, wait_recorded

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

MESSAGES = [{"role": "user", "content": "Leave nothing behind."}]
#: Objects of a request's server side: Django, DRF, Nexus, uvicorn, asyncio tasks.
SERVER_SIDE = ("django.", "rest_framework.", "routing.", "uvicorn.", "_asyncio.Task")
#: Rows read when a configuration snapshot is rebuilt (on a version change, at
#: most every few seconds, not per call): prefetched backends and their models
#: refer to each other.
SNAPSHOT_ROWS = ("django.db.models.", "routing.models.")


def _upstream_side(obj: object, port: int) -> bool:
    """An httpx object of Nexus's call to the upstream (the SDK's own httpx
    objects talk to Nexus, on another port)."""
    request = (
        getattr(obj, "request", None) if type(obj).__name__ == "Response" else None
    )
    url = getattr(request, "url", None)
    return url is not None and getattr(url, "port", None) == port


@pytest.fixture
def garbage() -> Iterator[list[Any]]:
    """``gc.garbage`` filled with what the collector finds unreachable meanwhile."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_plain_and_streamed_calls_leave_no_server_object_in_a_cycle(
    nexus_url, api_key, sdk, upstreams, garbage
):
    register(upstreams[0], priority=10)
    for _ in range(2):  # the first call marks the backend healthy: a rebuild
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    gc.collect()
    garbage.clear()
    for _ in range(3):
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
        body = {"model": MODEL, "messages": MESSAGES, "stream": True}
        with stream_post(nexus_url, api_key, body) as response:
            assert b"[DONE]" in response.read()
    wait_recorded()
    gc.collect()
    port = upstreams[0].port
    kinds = Counter(
        f"{type(o).__module__}.{type(o).__qualname__}"
        for o in garbage
        if f"{type(o).__module__}.{type(o).__qualname__}".startswith(SERVER_SIDE)
        or _upstream_side(o, port)
    )
    kinds = Counter({k: n for k, n in kinds.items() if not k.startswith(SNAPSHOT_ROWS)})
    print("KINDS", sorted(kinds.items()))
    assert kinds == {}, sorted(kinds.items())


#: What ``cut_request_cycles`` frees: DRF's request, view and response, the
#: API's own objects, the message storage and htmx details. (The WSGI request
#: itself still ends in a cycle of the WSGI adapter's, a smaller one.)
API_SIDE = ("rest_framework.", "routing.", "django.contrib.messages.", "django_htmx.")


def test_route_api_calls_leave_no_drf_or_middleware_object_in_a_cycle(
    nexus_url, api_key, upstreams, garbage
):
    import httpx

    register(upstreams[0], priority=10)
    body = {"model": MODEL, "messages": MESSAGES}
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=nexus_url, headers=headers) as client:
        for _ in range(2):
            client.post("/api/v1/route", json=body)
        gc.collect()
        garbage.clear()
        for _ in range(4):
            assert client.post("/api/v1/route", json=body).status_code == 200
    gc.collect()
    kinds = Counter(
        name
        for name in (f"{type(o).__module__}.{type(o).__qualname__}" for o in garbage)
        if name.startswith(API_SIDE) and not name.startswith(SNAPSHOT_ROWS)
    )
    assert kinds == {}, sorted(kinds.items())
