"""State every process (and, with Redis, every node) must see as one value.

Counters in a time window, for the rate limits on failed logins and unknown
API keys (``routing.rate_limits``) and the proxy's half-open trials; leases
(``lease``/``release``/``leases``) for what is in flight per backend: the
proxy's attempts, and decisions routed through the REST API until their usage
is reported. A lease expires on its own, so a process that dies mid-request
leaves nothing counted for good. Plain counters (``incr``) that only go up,
for round-robin positions (``routing.shared_counters``). The store is Redis
when ``NEXUS_REDIS_URL`` is set, else an embedded SQLite file under
``NEXUS_DATA_DIR`` that the processes of one machine share (independent of
``DATABASE_URL``). Circuit state and cool-downs live in the database (the
backend's row); see docs/operations.md for where each piece of state is kept.

A window starts at the first hit on a key and lasts ``window_seconds``; the
next hit after that starts a new one. A store that cannot be reached fails
OPEN: the hit counts as zero, a warning is logged and
``nexus_shared_state_unavailable_total`` goes up, so an outage of Redis never
locks everyone out; ``incr`` falls back to a count of this process's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

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

    def incr(self, key: str) -> int:
        """Add one to the counter ``key`` (0 when new) and return the new value."""
        ...

    def lease(self, group: str, key: str, seconds: float) -> None:
        """Hold ``key`` in ``group`` for ``seconds`` (or until released)."""
        ...

    def release(self, group: str, key: str) -> None:
        """Let go of ``key`` in ``group`` (nothing if it is not held)."""
        ...

    def leases(self, prefix: str) -> dict[str, int]:
        """Live leases per group whose name starts with ``prefix`` (cut off)."""
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
    # ``lease_rows`` (not the earlier ``leases``, counted by hand): the triggers
    # keep each group's count in ``gauges``, so taking or dropping a lease is
    # one statement. A process of the earlier code, during an upgrade, keeps
    # to its own table and counts.
    _LEASES = (
        "CREATE TABLE IF NOT EXISTS lease_rows (key TEXT PRIMARY KEY, "
        "grp TEXT NOT NULL, expires_at REAL NOT NULL)"
    )
    _LEASES_BY_EXPIRY = (
        "CREATE INDEX IF NOT EXISTS lease_rows_expiry ON lease_rows (expires_at)"
    )
    _LEASE_COUNTED = (
        "CREATE TRIGGER IF NOT EXISTS lease_rows_counted AFTER INSERT ON lease_rows "
        "BEGIN INSERT INTO gauges (key, value) "
        "VALUES (char(31) || 'leases:' || NEW.grp, 1) "
        "ON CONFLICT (key) DO UPDATE SET value = value + 1; END"
    )
    _LEASE_UNCOUNTED = (
        "CREATE TRIGGER IF NOT EXISTS lease_rows_uncounted AFTER DELETE ON lease_rows "
        "BEGIN UPDATE gauges SET value = max(value - 1, 0) "
        "WHERE key = char(31) || 'leases:' || OLD.grp; END"
    )
    #: A new lease is counted (trigger); a renewed one only moves its expiry.
    _LEASE = (
        "INSERT INTO lease_rows (key, grp, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at"
    )
    _COUNTERS = (
        "CREATE TABLE IF NOT EXISTS counters "
        "(key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
    )
    _INCR = (
        "INSERT INTO counters (key, value) VALUES (?, 1) "
        "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value"
    )
    _SCHEMAS = (
        _SCHEMA,
        _GAUGES,
        _LEASES,
        _LEASES_BY_EXPIRY,
        _LEASE_COUNTED,
        _LEASE_UNCOUNTED,
        _COUNTERS,
    )
    #: Expired rows are deleted on every this many-th hit of a process.
    PRUNE_EVERY = 1000

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._pruned_at = 0.0
        self._lock_file: IO[bytes] | None = None
        self._lock_pid = 0
        self._hits = 0

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            # Under the file lock: two processes creating the file at once
            # would otherwise race on the journal mode ("database is locked").
            with self._file_locked():
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                for statement in self._SCHEMAS:
                    connection.execute(statement)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    @contextlib.contextmanager
    def _file_locked(self) -> Iterator[None]:
        """This process holds the lock file beside the database (an ``flock``:
        the kernel wakes the next waiter at once, no polling)."""
        if self._lock_file is None or self._lock_pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(  # noqa: SIM115 - kept for the process
                self.path.with_name(self.path.name + ".lock"), "a+b"
            )
            self._lock_pid = os.getpid()
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """This process's connection, holding the file's write lock: writers
        queue on the ``flock`` rather than on SQLite's busy handler, which
        polls with sleeps of up to 100 ms under contention."""
        with self._lock:
            connection = self._connect()
            with self._file_locked():
                yield connection

    def hit(self, key: str, *, window_seconds: int) -> WindowCount:
        now = time.time()
        with self._writing() as connection:
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
        with self._writing() as connection:
            connection.execute("DELETE FROM window_counters WHERE key = ?", (key,))

    def incr(self, key: str) -> int:
        with self._writing() as connection:
            (value,) = connection.execute(self._INCR, (key,)).fetchone()
        return int(value)

    #: Live leases per group are counted in ``gauges`` under this prefix
    #: (by the ``lease_rows`` triggers).
    LEASE_COUNT = "\x1fleases:"
    #: Expired leases are pruned (and their counts lowered) this often.
    PRUNE_INTERVAL_S = 1.0

    def lease(self, group: str, key: str, seconds: float) -> None:
        now = time.time()
        with self._writing() as connection:
            self._prune(connection, now)
            connection.execute(self._LEASE, (f"{group}\x1f{key}", group, now + seconds))

    def release(self, group: str, key: str) -> None:
        with self._writing() as connection:
            connection.execute(
                "DELETE FROM lease_rows WHERE key = ?", (f"{group}\x1f{key}",)
            )

    def _prune(self, connection: sqlite3.Connection, now: float) -> None:
        """Delete expired leases (at most once a second per process); the
        trigger lowers their groups' counts."""
        if now - self._pruned_at < self.PRUNE_INTERVAL_S:
            return
        self._pruned_at = now
        connection.execute("DELETE FROM lease_rows WHERE expires_at <= ?", (now,))

    def leases(self, prefix: str) -> dict[str, int]:
        """Counted leases, less those expired but not yet pruned (few: pruning
        runs every second a lease is taken)."""
        now = time.time()
        with self._lock:
            connection = self._connect()
            counted = self.gauges_in(connection, self.LEASE_COUNT + prefix)
            if not counted:
                return {}
            expired = connection.execute(
                "SELECT grp, count(*) FROM lease_rows WHERE expires_at <= ? "
                "GROUP BY grp",
                (now,),
            ).fetchall()
        for group, count in expired:
            if group.startswith(prefix):
                name = group[len(prefix) :]
                if name in counted:
                    counted[name] -= count
        return {name: count for name, count in counted.items() if count > 0}

    @staticmethod
    def gauges_in(connection: sqlite3.Connection, prefix: str) -> dict[str, int]:
        rows = connection.execute(
            "SELECT key, value FROM gauges WHERE value > 0 AND substr(key, 1, ?) = ?",
            (len(prefix), prefix),
        ).fetchall()
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

    COUNTER = "nexus:counter:"

    def incr(self, key: str) -> int:
        return int(self._client.incr(self.COUNTER + key))

    LEASE_GROUPS = "nexus:lease-groups"
    LEASE = "nexus:lease:"

    def lease(self, group: str, key: str, seconds: float) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.sadd(self.LEASE_GROUPS, group)
        pipe.zadd(self.LEASE + group, {key: time.time() + seconds})
        pipe.execute()

    def release(self, group: str, key: str) -> None:
        self._client.zrem(self.LEASE + group, key)

    def leases(self, prefix: str) -> dict[str, int]:
        groups = sorted(
            g.decode()
            for g in self._client.smembers(self.LEASE_GROUPS)
            if g.decode().startswith(prefix)
        )
        if not groups:
            return {}
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        for group in groups:
            pipe.zremrangebyscore(self.LEASE + group, "-inf", now)
            pipe.zcard(self.LEASE + group)
        counts = pipe.execute()[1::2]
        return {
            g[len(prefix) :]: int(c) for g, c in zip(groups, counts, strict=True) if c
        }


class FailOpen:
    """Wraps a store: an error is logged and counted, and reads as no hits."""

    def __init__(self, store: SharedState) -> None:
        self.store = store
        self.name = store.name
        self._own_counts: dict[str, int] = {}
        self._own_lock = threading.Lock()

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

    def incr(self, key: str) -> int:
        """The shared count, or while the store fails this process's own (a
        rotation per process rather than none)."""
        try:
            return self.store.incr(key)
        except Exception as exc:  # noqa: BLE001
            self._failed("incr", exc)
        with self._own_lock:
            value = self._own_counts.get(key, 0) + 1
            self._own_counts[key] = value
            return value

    def lease(self, group: str, key: str, seconds: float) -> None:
        try:
            self.store.lease(group, key, seconds)
        except Exception as exc:  # noqa: BLE001
            self._failed("lease", exc)

    def release(self, group: str, key: str) -> None:
        try:
            self.store.release(group, key)
        except Exception as exc:  # noqa: BLE001
            self._failed("release", exc)

    def leases(self, prefix: str) -> dict[str, int]:
        try:
            return self.store.leases(prefix)
        except Exception as exc:  # noqa: BLE001
            self._failed("leases", exc)
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
