"""What ``/readyz`` checks: the database and, when configured, Redis."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection

#: Seconds a readiness probe waits for Redis before calling it unreachable.
REDIS_TIMEOUT_S = 2.0


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else 'no detail'}"


def database_problem() -> str | None:
    """None when the database answers a query, else why not (one line)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return _one_line(exc)
    return None


def redis_problem(url: str) -> str | None:
    """None when Redis at ``url`` answers PING, else why not (one line)."""
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return _one_line(exc)
    finally:
        client.close()
    return None


def readiness_checks() -> dict[str, str | None]:
    """Each dependency's problem, None where it is fine."""
    checks = {"database": database_problem()}
    if settings.NEXUS_REDIS_URL:
        checks["redis"] = redis_problem(settings.NEXUS_REDIS_URL)
    return checks
