"""/metrics on a real gunicorn with three workers counts every worker's decisions:
each scrape, whichever worker answers it, reads the same total, never less."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from routing.dev.bench_server import free_port, gunicorn_command, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 3
CALLS = 60
CLIENTS = 4
SCRAPES = 12
DECISIONS = re.compile(r"^nexus_decisions_total\{[^}]*\} (\S+)$", re.M)


@dataclass(frozen=True)
class Node:
    port: int
    key: str
    metrics_dir: Path


def manage(env: dict[str, str], *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """The demo on a SQLite file, served by gunicorn with ``WORKERS`` workers
    and ``PROMETHEUS_MULTIPROC_DIR`` prepared the documented way."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "NEXUS_REDIS_URL"}
    }
    metrics_dir = tmp_path / "metrics"
    env.update(
        NEXUS_DATA_DIR=str(tmp_path / "data"),
        DJANGO_SECRET_KEY="metrics-test-" + "x" * 40,
        DJANGO_DEBUG="false",
        DJANGO_SETTINGS_MODULE="nexus_site.settings",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # a previous run's
    prepared = subprocess.run(
        [sys.executable, "-m", "routing.metrics_dir", "prepare"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert prepared.returncode == 0, prepared.stderr
    assert list(metrics_dir.iterdir()) == []
    manage(env, "migrate", "--verbosity=0")
    manage(env, "load_demo")
    key = manage(env, "issue_api_key", "metrics-test").strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(gunicorn_command(port, WORKERS, 1), cwd=ROOT, env=env)
    try:
        wait_healthy(port, server, 90)
        yield Node(port=port, key=key, metrics_dir=metrics_dir)
    finally:
        server.terminate()
        server.wait(timeout=30)


def route_calls(node: Node, total: int) -> list[int]:
    """``total`` recorded route calls from ``CLIENTS`` threads, a new connection
    each (so the workers share them); their statuses."""
    body = json.dumps(
        {"model": "internal-chat", "messages": [{"role": "user", "content": "Hi"}]}
    )
    headers = {
        "Authorization": f"Bearer {node.key}",
        "Content-Type": "application/json",
    }
    calls = iter(range(total))
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in calls:
            conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
            conn.request("POST", "/api/v1/route", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            with lock:
                statuses.append(response.status)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def decisions_total(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    assert response.status == 200, text
    return sum(float(value) for value in DECISIONS.findall(text))


def test_every_scrape_reads_every_workers_decisions_and_never_less(
    node: Node,
) -> None:
    statuses = route_calls(node, CALLS)
    assert len(statuses) == CALLS and set(statuses) == {200}, statuses

    scrapes = [decisions_total(node.port) for _ in range(SCRAPES)]

    assert scrapes == [float(CALLS)] * SCRAPES
    # More than one worker recorded decisions: the total is a sum over processes.
    counter_files = list(node.metrics_dir.glob("counter_*.db"))
    assert len(counter_files) >= 2, counter_files
