"""Nexus served by a real ASGI server (uvicorn, in a thread) on loopback, fake
upstreams on real sockets, and the official ``openai`` SDK as the client."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from django.db import connections

from routing.dev.fake_upstream import FakeUpstream
from routing.services import passive_health
from tests.factories import BackendFactory, BackendModelFactory, cloud_zone

MODEL = "chat-model"


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot own signals
        return


@pytest.fixture
def nexus_url(settings: Any) -> Iterator[str]:
    """Base URL of Nexus's ASGI application under uvicorn (same test database)."""
    settings.NEXUS_PROXY_FIRST_BYTE_TIMEOUT_S = 2.0
    settings.NEXUS_PROXY_IDLE_TIMEOUT_S = 2.0
    settings.NEXUS_PROXY_COOLDOWN_S = 1.0
    passive_health._next_reopen_check = 0.0
    forget_configuration()
    # Server, upstreams and client share this one process: give the server's
    # threads the connections a deployment spreads over its workers.
    from django.db import connection

    pool = getattr(connection, "pool", None)
    if pool is not None:
        pool.resize(1, 40)
    from nexus_site.asgi import application

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(
        uvicorn.Config(application, lifespan="off", log_level="warning", loop="asyncio")
    )
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    if pool is not None:
        pool.resize(1, settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"])
    sock.close()
    connections.close_all()


@pytest.fixture
def api_key() -> str:
    from routing.services.api_keys import api_key_issue

    return api_key_issue(name="app", is_admin=False)[1]


@pytest.fixture
def sdk(nexus_url: str, api_key: str) -> Any:
    """The official OpenAI SDK pointed at Nexus (no retries of its own)."""
    import openai

    client = openai.OpenAI(
        base_url=f"{nexus_url}/v1", api_key=api_key, max_retries=0, timeout=20
    )
    yield client
    client.close()


@pytest.fixture
def upstreams() -> Iterator[list[FakeUpstream]]:
    """Three fake upstreams serving ``MODEL``, started; closed after the test."""
    started = [FakeUpstream(name=f"up-{n}", models=[MODEL]).start() for n in range(3)]
    yield started
    for upstream in started:
        upstream.close()


def register(
    upstream: FakeUpstream,
    *,
    priority: int,
    cloud: bool = False,
    price: str = "0",
    model: str = MODEL,
    **fields: Any,
) -> Any:
    """A backend row for ``upstream`` (name = the upstream's name)."""
    extra: dict[str, Any] = {"privacy_zone": cloud_zone()} if cloud else {}
    backend = BackendFactory(
        name=upstream.name,
        kind="vllm",
        base_url=upstream.base_url,
        priority=priority,
        max_concurrency=64,
        **extra,
        **fields,
    )
    BackendModelFactory(
        backend=backend,
        name=model,
        input_cost_per_1k=Decimal(price),
        output_cost_per_1k=Decimal(price),
    )
    forget_configuration()
    return backend


def wait_recorded(timeout: float = 5.0) -> None:
    """Wait until the proxy has recorded every answer it sent (a plain answer
    whose attempt succeeded is recorded right after it goes out)."""
    from routing.proxy import views

    deadline = time.monotonic() + timeout
    while views._cleanups:
        assert time.monotonic() < deadline, "the proxy did not record in time"
        time.sleep(0.005)


def forget_configuration() -> None:
    """Rows written by factories bump no version: forget cached snapshots."""
    from routing.adapters import config_snapshot_invalidate
    from routing.proxy import decide

    config_snapshot_invalidate()
    decide._key_envs.clear()


def stream_post(nexus_url: str, api_key: str, body: dict[str, Any]) -> Any:
    """``httpx.stream`` of a chat request to the proxy (a context manager), for
    tests that read the raw events or leave early."""
    import httpx

    return httpx.stream(
        "POST",
        f"{nexus_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
