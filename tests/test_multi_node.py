"""Two nodes (two ``scripts/serve web`` on different ports) on one PostgreSQL and
one Redis behave as one deployment.

One test, in phases, because both nodes serve the same committed database for
its whole length (a transactional test database is emptied between tests):
round robin rotates across the nodes, concurrent routing split over both never
overspends a budget and records every call once, an edit made through one node
is applied by the other on its next call, and a stream proxied by one node
counts as in flight on the other.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from routing.dev.fake_upstream import FakeUpstream
from routing.models import Backend, BackendModel, Budget, RoutingDecision
from routing.services.api_keys import api_key_issue
from routing.services.config import config_save
from tests.conftest import require_service
from tests.fleet_rows import chat, make_fleet, set_budget
from tests.settings.test_clean_install import free_port, get
from tests.settings.test_serve import ROOT, clean_env

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ESTIMATE = Decimal("0.0125")  # gpt-4o, 1000 tokens in and out (see the race test)
ROOM_FOR = 10
CALLS = 64


def redis_url() -> str:
    url = os.environ.get("NEXUS_TEST_REDIS_URL") or os.environ.get(
        "CELERY_BROKER_URL", ""
    )
    return url if url.startswith("redis://") else ""


def database_url() -> str:
    """The test database as a URL the nodes can open."""
    s = connection.settings_dict
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or "5432"
    password = f":{s['PASSWORD']}" if s["PASSWORD"] else ""
    return f"postgres://{s['USER']}{password}@{host}:{port}/{s['NAME']}"


class Node:
    """One ``scripts/serve web`` on a free port."""

    def __init__(self, name: str, tmp_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = tmp_path / f"{name}.log"
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            ["scripts/serve", "web"],
            cwd=ROOT,
            env=env | {"NEXUS_BIND": f"127.0.0.1:{self.port}"},
            stdout=log,
            stderr=log,
        )
        log.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{self.name}: no /readyz in 120 s"
            try:
                if get(self.port, "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def call(
        self, method: str, path: str, key: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(
                method,
                path,
                body=json.dumps(body) if body is not None else None,
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/json",
                },
            )
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A slow streaming upstream (four chunks, 0.5 s apart)."""
    fake = FakeUpstream(name="slow-stream", models=["stream-model"]).start()
    fake.chunk_delay_s = 0.5
    yield fake
    fake.close()


@pytest.fixture
def nodes(
    postgres: None, tmp_path: Path, upstream: FakeUpstream
) -> Iterator[tuple[Node, Node]]:
    url = redis_url()
    require_service(
        bool(url), "needs Redis: set NEXUS_TEST_REDIS_URL or CELERY_BROKER_URL"
    )
    make_fleet()
    backend = Backend(
        name=upstream.name, kind="vllm", base_url=upstream.base_url, max_concurrency=64
    )
    config_save(instance=backend, actor="test")
    config_save(
        instance=BackendModel(
            backend=backend,
            name="stream-model",
            input_cost_per_1k=Decimal(0),
            output_cost_per_1k=Decimal(0),
            context_window=128000,
        ),
        actor="test",
    )
    set_budget(str(ESTIMATE * ROOM_FOR), hard_limit_action="block_cloud")
    env = clean_env(
        tmp_path,
        VIRTUAL_ENV=sys.prefix,
        DJANGO_SECRET_KEY="multi-node-test-key",
        DATABASE_URL=database_url(),
        NEXUS_REDIS_URL=url,
        CELERY_BROKER_URL=url,
        NEXUS_MIGRATE="false",
        NEXUS_WEB_WORKERS="2",
        NEXUS_SELECTION_STRATEGY="round_robin",
    )
    both = (Node("node-a", tmp_path, env), Node("node-b", tmp_path, env))
    try:
        for node in both:
            node.wait_ready()
        yield both
    finally:
        for node in both:
            node.stop()


def test_two_nodes_on_one_database_and_one_redis_behave_as_one(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    _, key = api_key_issue(name="two-nodes")
    _, admin = api_key_issue(name="two-nodes-admin", is_admin=True)

    # Round robin rotates across both nodes: 100 calls sent alternately.
    picks = []
    for i in range(100):
        status, body = (a, b)[i % 2].call(
            "POST", "/api/v1/route", key, chat("llama3.1:8b")
        )
        assert status == 200, body
        picks.append(body["backend"]["name"])
    assert set(picks) == {"cloud-llama", "local-gpu"}
    assert all(x != y for x, y in zip(picks, picks[1:], strict=False)), picks

    # 64 concurrent route calls split over both nodes: the budget holds, and
    # every call is recorded once.
    before = RoutingDecision.objects.count()
    budget = Budget.objects.get(name="global")
    assert budget.monthly_limit_usd is not None
    held = budget.spent_usd + budget.reserved_usd  # the priced llama routes above
    room = int((budget.monthly_limit_usd - held) // ESTIMATE)
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CALLS)
    body = chat("gpt-4o", text="x" * 4000, max_tokens=1000)

    def race(node: Node) -> None:
        barrier.wait(timeout=30)
        status, _ = node.call("POST", "/api/v1/route", key, body)
        with lock:
            statuses.append(status)

    threads = [
        threading.Thread(target=race, args=((a, b)[i % 2],)) for i in range(CALLS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == CALLS
    assert statuses.count(200) == room
    assert statuses.count(503) == CALLS - room
    assert RoutingDecision.objects.count() - before == CALLS
    budget.refresh_from_db()
    assert budget.spent_usd + budget.reserved_usd == held + ESTIMATE * room
    assert budget.spent_usd + budget.reserved_usd <= budget.monthly_limit_usd

    # An edit through node A is applied by node B on its next call.
    status, _ = a.call(
        "PATCH", "/api/v1/backends/local-gpu/", admin, {"enabled": False}
    )
    assert status == 200
    for _ in range(4):
        status, routed = b.call("POST", "/api/v1/route", key, chat("llama3.1:8b"))
        assert (status, routed["backend"]["name"]) == (200, "cloud-llama")

    # A stream proxied by node A counts as in flight on node B.
    def pending_on_b() -> int:
        status, backend = b.call("GET", "/api/v1/backends/slow-stream/", key)
        assert status == 200, backend
        return int(backend["pending_requests"])

    assert pending_on_b() == 0
    with httpx.stream(
        "POST",
        f"http://127.0.0.1:{a.port}/v1/chat/completions",
        json={**chat("stream-model"), "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert first != "data: [DONE]"
        assert pending_on_b() == 1
        assert "data: [DONE]" in list(lines)
    deadline = time.monotonic() + 10
    while pending_on_b() != 0:
        assert time.monotonic() < deadline, "the stream never left the in-flight count"
        time.sleep(0.2)
