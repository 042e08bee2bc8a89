"""Round-robin positions in the shared state: one rotation for every process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from routing import metrics
from routing.adapters import shared_pipeline, shared_pipeline_reset
from routing.pipeline import CounterStore
from routing.shared_counters import SharedCounterStore
from routing.shared_state import FailOpen, RedisState, SqliteState, shared_state
from tests.conftest import require_service
from tests.pipeline.fleet import config, context, local, offer, request
from tests.test_shared_state import _redis_url

ROOT = Path(__file__).resolve().parent.parent
CALLS = 100
BACKENDS = ("a", "b", "c")

# A worker process: routes one request per line read (the model's name) through
# the app's shared pipeline and prints the chosen backend.
ROUTER = """
import sys
import django
django.setup()
from routing.adapters import shared_pipeline
from tests.pipeline.fleet import config, context, local, offer, request
model = sys.argv[1]
fleet = config(*(local(n, models=(offer(model),)) for n in sys.argv[2:]))
print("ready", flush=True)
for line in sys.stdin:
    result = shared_pipeline().route(request(line.strip()), context(fleet))
    print(result.backend_name, flush=True)
"""


def _picks_alternating_over_two_processes(
    tmp_path: Path, model: str, redis_url: str
) -> list[str]:
    """``CALLS`` round-robin picks for ``model``, sent to two worker processes
    in turn (A, B, A, B, ...), in the order they were made."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "nexus_site.settings",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "x",
        "NEXUS_DATA_DIR": str(tmp_path),
        "NEXUS_REDIS_URL": redis_url,
        "NEXUS_SELECTION_STRATEGY": "round_robin",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", ROUTER, model, *BACKENDS],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        picks = []
        for call in range(CALLS):
            worker = workers[call % 2]
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write(model + "\n")
            worker.stdin.flush()
            picks.append(worker.stdout.readline().strip())
    finally:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.close()
        codes = [worker.wait(timeout=60) for worker in workers]
    assert codes == [0, 0]
    return picks


def _strict_rotation() -> list[str]:
    return [BACKENDS[call % len(BACKENDS)] for call in range(CALLS)]


def test_round_robin_rotates_strictly_across_two_processes_sharing_the_file(
    tmp_path: Path,
) -> None:
    picks = _picks_alternating_over_two_processes(tmp_path, "llama3", "")
    assert picks == _strict_rotation()
    # Both processes turned the one counter in the embedded file.
    assert SqliteState(tmp_path / "shared-state.sqlite3").incr("rr:llama3") == 101


def test_round_robin_rotates_strictly_across_two_processes_sharing_redis(
    tmp_path: Path,
) -> None:
    url = _redis_url()
    require_service(
        bool(url), "needs Redis: set NEXUS_TEST_REDIS_URL or CELERY_BROKER_URL=redis://"
    )
    model = f"rr-{uuid.uuid4().hex[:8]}"  # a counter no earlier run has turned
    try:
        picks = _picks_alternating_over_two_processes(tmp_path, model, url)
        assert picks == _strict_rotation()
        assert RedisState(url).incr("rr:" + model) == CALLS + 1
    finally:
        RedisState(url)._client.delete(RedisState.COUNTER + "rr:" + model)


def _counts_from_zero_per_key(store: CounterStore) -> None:
    first, second = f"m-{uuid.uuid4().hex[:8]}", f"n-{uuid.uuid4().hex[:8]}"
    assert [store.next(first) for _ in range(3)] == [0, 1, 2]
    assert store.next(second) == 0
    assert store.next(first) == 3


def test_the_shared_counter_store_counts_from_zero_per_key_in_the_file(
    settings: Any,
) -> None:
    store = SharedCounterStore()
    assert isinstance(store, CounterStore)
    _counts_from_zero_per_key(store)
    # The positions are in the configured file, under their own prefix.
    file = SqliteState(Path(settings.NEXUS_SHARED_STATE_FILE))
    assert file.incr("rr:other") == 1
    assert file.peek("rr:other").count == 0  # counters are not windows


def test_the_shared_counter_store_counts_from_zero_per_key_in_redis(
    settings: Any,
) -> None:
    url = _redis_url()
    require_service(
        bool(url), "needs Redis: set NEXUS_TEST_REDIS_URL or CELERY_BROKER_URL=redis://"
    )
    settings.NEXUS_REDIS_URL = url
    assert shared_state().name == "redis"
    client = RedisState(url)._client
    before = set(client.keys(RedisState.COUNTER + "rr:*"))
    try:
        _counts_from_zero_per_key(SharedCounterStore())
        assert len(set(client.keys(RedisState.COUNTER + "rr:*")) - before) == 2
    finally:
        for key in set(client.keys(RedisState.COUNTER + "rr:*")) - before:
            client.delete(key)


def test_the_embedded_counters_survive_a_new_connection(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    assert [SqliteState(path).incr("k") for _ in range(3)] == [1, 2, 3]
    assert SqliteState(path).incr("j") == 1


def test_an_unreachable_redis_still_rotates_in_this_process_and_is_counted(
    settings: Any,
) -> None:
    settings.NEXUS_REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    failures = metrics.SHARED_STATE_UNAVAILABLE.labels("redis")
    before = failures._value.get()
    assert isinstance(shared_state(), FailOpen)
    key = f"m-{uuid.uuid4().hex[:8]}"  # the process's own count may outlive a test
    assert [SharedCounterStore().next(key) for _ in range(3)] == [0, 1, 2]
    assert failures._value.get() == before + 3


def test_the_app_pipeline_turns_the_shared_counter(settings: Any) -> None:
    settings.NEXUS_SELECTION_STRATEGY = "round_robin"
    shared_pipeline_reset()
    try:
        fleet = config(*(local(n, models=(offer("llama3"),)) for n in BACKENDS))
        first = shared_pipeline().route(request("llama3"), context(fleet))
        assert first.backend_name == "a"
        # Another process took the next turn: this one routes to the turn after.
        SqliteState(Path(settings.NEXUS_SHARED_STATE_FILE)).incr("rr:llama3")
        third = shared_pipeline().route(request("llama3"), context(fleet))
        assert third.backend_name == "c"
    finally:
        shared_pipeline_reset()


@pytest.fixture(autouse=True)
def _no_pipeline_kept() -> None:
    """Each test builds the app's pipeline from its own settings."""
    shared_pipeline_reset()
