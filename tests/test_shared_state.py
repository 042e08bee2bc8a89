"""The shared counters: exact across processes, on the file and on Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from routing import metrics
from routing.shared_state import FailOpen, RedisState, SqliteState, shared_state
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parent.parent
HITS = 300
COUNTER = """
import sys
from pathlib import Path
from routing.shared_state import SqliteState
store = SqliteState(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    store.hit("race", window_seconds=600)
"""


def test_the_embedded_store_counts_every_hit_from_two_processes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", COUNTER, str(path), str(HITS)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(2)
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    store = SqliteState(path)
    assert store.peek("race").count == 2 * HITS
    assert store.hit("race", window_seconds=600).count == 2 * HITS + 1


def _windows_restart_and_reset(store: Any) -> None:
    first = store.hit("k", window_seconds=1)
    assert (first.count, first.retry_after) == (1, 1)
    assert store.hit("k", window_seconds=1).count == 2
    assert store.peek("k").count == 2
    time.sleep(1.1)
    assert store.peek("k").count == 0
    assert store.hit("k", window_seconds=60).count == 1  # a new window
    assert store.peek("k").retry_after == 60
    store.reset("k")
    assert store.peek("k").count == 0


def test_the_embedded_store_starts_a_new_window_when_one_ends_and_forgets_on_reset(
    tmp_path: Path,
) -> None:
    _windows_restart_and_reset(SqliteState(tmp_path / "state.sqlite3"))


def _redis_url() -> str:
    url = os.environ.get("NEXUS_TEST_REDIS_URL") or os.environ.get(
        "CELERY_BROKER_URL", ""
    )
    if not url.startswith(("redis://", "rediss://")):
        return ""
    try:
        RedisState(url).peek("ping")
    except Exception:  # noqa: BLE001 - reported as unavailable below
        return ""
    return url


@pytest.fixture
def redis_store() -> RedisState:
    url = _redis_url()
    require_service(
        bool(url), "needs Redis: set NEXUS_TEST_REDIS_URL or CELERY_BROKER_URL=redis://"
    )
    store = RedisState(url)
    store.reset("k")
    return store


def test_the_redis_store_starts_a_new_window_when_one_ends_and_forgets_on_reset(
    redis_store: RedisState,
) -> None:
    _windows_restart_and_reset(redis_store)


def test_the_configured_redis_store_is_shared_by_every_caller(
    redis_store: RedisState, settings: Any
) -> None:
    settings.NEXUS_REDIS_URL = _redis_url()
    assert shared_state().name == "redis"
    for _ in range(5):
        shared_state().hit("k", window_seconds=60)
    assert redis_store.peek("k").count == 5
    redis_store.reset("k")


def test_an_unreachable_redis_fails_open_and_is_counted(settings: Any) -> None:
    settings.NEXUS_REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    failures = metrics.SHARED_STATE_UNAVAILABLE.labels("redis")
    before = failures._value.get()
    store = shared_state()
    assert isinstance(store, FailOpen)
    assert store.hit("k", window_seconds=60).count == 0
    assert store.peek("k").count == 0
    assert failures._value.get() == before + 2


LEASE_WORKER = """
import sys
from pathlib import Path
from routing.shared_state import SqliteState
store = SqliteState(Path(sys.argv[1]))
for n in range(int(sys.argv[2])):
    store.lease("inflight:x", sys.argv[3] + str(n), 600)
    store.release("inflight:x", sys.argv[3] + str(n))
    store.lease("inflight:y", sys.argv[3] + str(n), 600)
"""


def test_the_embedded_leases_are_exact_across_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", LEASE_WORKER, str(path), str(HITS), name],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for name in ("a", "b")
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    assert SqliteState(path).leases("inflight:") == {"y": 2 * HITS}


def test_an_unreachable_redis_lease_reads_as_nothing_in_flight(settings: Any) -> None:
    settings.NEXUS_REDIS_URL = "redis://127.0.0.1:9/0"
    store = shared_state()
    store.lease("inflight:x", "t", 60)
    assert store.leases("inflight:") == {}


def _leases_count_until_released_or_expired(store: Any) -> None:
    import uuid

    prefix = f"l-{uuid.uuid4().hex[:8]}:"
    store.lease(prefix + "a", "d1", 60)
    store.lease(prefix + "a", "d2", 0.5)
    store.lease(prefix + "a", "d2", 0.5)  # renewed, not counted twice
    store.lease(prefix + "b", "d3", 60)
    assert store.leases(prefix) == {"a": 2, "b": 1}
    store.release(prefix + "b", "d3")
    store.release(prefix + "b", "d3")  # a second release changes nothing
    assert store.leases(prefix) == {"a": 2}
    time.sleep(0.6)
    assert store.leases(prefix) == {"a": 1}  # d2 expired
    store.lease(prefix + "c", "d4", 60)  # prunes d2 on the file store
    store.release(prefix + "a", "d2")  # expired already: nothing to release
    assert store.leases(prefix) == {"a": 1, "c": 1}


def test_the_embedded_store_counts_leases(tmp_path: Path) -> None:
    store = SqliteState(tmp_path / "state.sqlite3")
    store.PRUNE_INTERVAL_S = 0.0
    _leases_count_until_released_or_expired(store)


def test_the_redis_store_counts_leases(redis_store: RedisState) -> None:
    _leases_count_until_released_or_expired(redis_store)
