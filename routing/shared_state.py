"""State every process (and, with Redis, every node) must see as one value.

Counters in a time window, for the rate limits on failed logins and unknown
API keys (``routing.rate_limits``) and the proxy's half-open trials; gauges
(``add``/``gauges``) for the proxy's in-flight requests per backend. The store is Redis when
``NEXUS_REDIS_URL`` is set, else an embedded SQLite file under
``NEXUS_DATA_DIR`` that the processes of one machine share (independent of
``DATABASE_URL``). Later shared state (round-robin positions, in-flight
counts, circuit state) belongs behind the same ``SharedState`` interface.

A window starts at the first hit on a key and lasts ``window_seconds``; the
next hit after that starts a new one. A store that cannot be reached fails
OPEN: the hit counts as zero, a warning is logged and
``nexus_shared_state_unavailable_total`` goes up, so an outage of Redis never
locks everyone out.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowCount:
    """Hits on a key in its current window, and seconds until that window ends."""

    count: int
    retry_after: int

    @classmethod
    def empty(cls) -> WindowCount:
        return cls(0, 0)


class SharedState(Protocol):
    """Counters shared by every process; each operation is atomic."""

    name: str

    def hit(self, key: str, *, window_seconds: int) -> WindowCount:
        """Count one hit on ``key`` and return the window's count so far."""
        ...

    def peek(self, key: str) -> WindowCount:
        """The count of ``key``'s current window, without counting."""
        ...

    def reset(self, key: str) -> None:
        """Forget ``key`` (its next hit starts a new window)."""
        ...

    def add(self, key: str, delta: int) -> int:
        """Add ``delta`` to the gauge ``key`` (never below 0); its new value."""
        ...

    def gauges(self, prefix: str) -> dict[str, int]:
        """Every non-zero gauge whose key starts with ``prefix`` (prefix cut off)."""
        ...


def _retry_after(expires_at: float, now: float) -> int:
    return max(1, int(expires_at - now + 0.999))


class SqliteState:
    """The embedded default: one SQLite file, one atomic UPSERT per hit.

    SQLite takes a write lock per statement, so processes sharing the file
    count exactly; WAL and a busy timeout keep readers and writers from
    failing under contention. One connection per process (reopened after fork).
    """

    name = "sqlite"
    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS window_counters ("
        "key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires_at REAL NOT NULL)"
    )
    _HIT = (
        "INSERT INTO window_counters (key, count, expires_at) "
        "VALUES (:key, 1, :now + :window) "
        "ON CONFLICT (key) DO UPDATE SET "
        "count = CASE WHEN expires_at <= :now THEN 1 ELSE count + 1 END, "
        "expires_at = CASE WHEN expires_at <= :now THEN :now + :window "
        "ELSE expires_at END "
        "RETURNING count, expires_at"
    )
    _GAUGES = "CREATE TABLE IF NOT EXISTS gauges (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
    _ADD = (
        "INSERT INTO gauges (key, value) VALUES (:key, max(:delta, 0)) "
        "ON CONFLICT (key) DO UPDATE SET value = max(value + :delta, 0) "
        "RETURNING value"
    )
    #: Expired rows are deleted on every this many-th hit of a process.
    PRUNE_EVERY = 1000

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._hits = 0

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(self._SCHEMA)
            connection.execute(self._GAUGES)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def hit(self, key: str, *, window_seconds: int) -> WindowCount:
        now = time.time()
        with self._lock:
            connection = self._connect()
            count, expires_at = connection.execute(
                self._HIT, {"key": key, "now": now, "window": window_seconds}
            ).fetchone()
            self._hits += 1
            if self._hits % self.PRUNE_EVERY == 0:
                connection.execute(
                    "DELETE FROM window_counters WHERE expires_at <= ?", (now,)
                )
        return WindowCount(int(count), _retry_after(expires_at, now))

    def peek(self, key: str) -> WindowCount:
        now = time.time()
        with self._lock:
            row = (
                self._connect()
                .execute(
                    "SELECT count, expires_at FROM window_counters "
                    "WHERE key = ? AND expires_at > ?",
                    (key, now),
                )
                .fetchone()
            )
        if row is None:
            return WindowCount.empty()
        return WindowCount(int(row[0]), _retry_after(row[1], now))

    def reset(self, key: str) -> None:
        with self._lock:
            self._connect().execute("DELETE FROM window_counters WHERE key = ?", (key,))

    def add(self, key: str, delta: int) -> int:
        with self._lock:
            (value,) = (
                self._connect()
                .execute(self._ADD, {"key": key, "delta": delta})
                .fetchone()
            )
        return int(value)

    def gauges(self, prefix: str) -> dict[str, int]:
        with self._lock:
            rows = (
                self._connect()
                .execute(
                    "SELECT key, value FROM gauges WHERE value > 0 "
                    "AND substr(key, 1, ?) = ?",
                    (len(prefix), prefix),
                )
                .fetchall()
            )
        return {key[len(prefix) :]: int(value) for key, value in rows}


class RedisState:
    """Redis: INCR and EXPIRE in one Lua script (atomic on the server)."""

    name = "redis"
    PREFIX = "nexus:window:"
    _HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

    def __init__(self, url: str) -> None:
        import redis

        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._script = self._client.register_script(self._HIT)
        self._add: Any = None

    def hit(self, key: str, *, window_seconds: int) -> WindowCount:
        count, ttl_ms = self._script(
            keys=[self.PREFIX + key], args=[window_seconds * 1000]
        )
        return WindowCount(int(count), max(1, -(-int(ttl_ms) // 1000)))

    def peek(self, key: str) -> WindowCount:
        pipe = self._client.pipeline(transaction=True)
        pipe.get(self.PREFIX + key)
        pipe.pttl(self.PREFIX + key)
        count, ttl_ms = pipe.execute()
        if count is None or ttl_ms <= 0:
            return WindowCount.empty()
        return WindowCount(int(count), max(1, -(-int(ttl_ms) // 1000)))

    def reset(self, key: str) -> None:
        self._client.delete(self.PREFIX + key)

    GAUGES = "nexus:gauges"
    _ADD = """
local value = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if value < 0 then
  redis.call('HSET', KEYS[1], ARGV[1], 0)
  value = 0
end
return value
"""

    def add(self, key: str, delta: int) -> int:
        if self._add is None:
            self._add = self._client.register_script(self._ADD)
        return int(self._add(keys=[self.GAUGES], args=[key, delta]))

    def gauges(self, prefix: str) -> dict[str, int]:
        found = {}
        for raw_key, raw_value in self._client.hgetall(self.GAUGES).items():
            key = raw_key.decode()
            if key.startswith(prefix) and int(raw_value) > 0:
                found[key[len(prefix) :]] = int(raw_value)
        return found


class FailOpen:
    """Wraps a store: an error is logged and counted, and reads as no hits."""

    def __init__(self, store: SharedState) -> None:
        self.store = store
        self.name = store.name

    def _failed(self, operation: str, exc: Exception) -> None:
        from routing import metrics

        metrics.SHARED_STATE_UNAVAILABLE.labels(self.name).inc()
        logger.warning(
            "shared state (%s) unavailable for %s, failing open: %s",
            self.name,
            operation,
            exc,
        )

    def hit(self, key: str, *, window_seconds: int) -> WindowCount:
        try:
            return self.store.hit(key, window_seconds=window_seconds)
        except Exception as exc:  # noqa: BLE001 - any store failure fails open
            self._failed("hit", exc)
            return WindowCount.empty()

    def peek(self, key: str) -> WindowCount:
        try:
            return self.store.peek(key)
        except Exception as exc:  # noqa: BLE001
            self._failed("peek", exc)
            return WindowCount.empty()

    def reset(self, key: str) -> None:
        try:
            self.store.reset(key)
        except Exception as exc:  # noqa: BLE001
            self._failed("reset", exc)

    def add(self, key: str, delta: int) -> int:
        try:
            return self.store.add(key, delta)
        except Exception as exc:  # noqa: BLE001
            self._failed("add", exc)
            return 0

    def gauges(self, prefix: str) -> dict[str, int]:
        try:
            return self.store.gauges(prefix)
        except Exception as exc:  # noqa: BLE001
            self._failed("gauges", exc)
            return {}


_store: tuple[tuple[str, str], FailOpen] | None = None
_store_lock = threading.Lock()


def shared_state() -> SharedState:
    """This process's store for the configured settings (Redis or the file)."""
    global _store
    url = settings.NEXUS_REDIS_URL
    config = (url, "" if url else str(settings.NEXUS_SHARED_STATE_FILE))
    current = _store
    if current is None or current[0] != config:
        with _store_lock:
            inner: SharedState = (
                RedisState(url) if url else SqliteState(Path(config[1]))
            )
            current = _store = (config, FailOpen(inner))
    return current[1]
