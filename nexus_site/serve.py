"""The production entrypoint behind ``scripts/serve web|worker|beat``.

``web`` checks the configuration, migrates (unless ``NEXUS_MIGRATE=false``),
collects static files and replaces itself with gunicorn serving the ASGI
application with uvicorn workers on ``NEXUS_BIND``. ``worker`` and ``beat``
replace themselves with Celery. A bad setting ends the start with one line
naming the variable and exit status 2; nothing is installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

ROLES = ("web", "worker", "beat")
DEFAULT_BIND = "127.0.0.1:8000"
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>\d+)$")

#: The server flags the entrypoint and the benchmarks share: gunicorn as process
#: manager, uvicorn workers running the ASGI application, so a proxied stream
#: waits on an event loop instead of holding a worker.
GUNICORN_ASGI = (
    "gunicorn",
    "nexus_site.asgi:application",
    # Prepares PROMETHEUS_MULTIPROC_DIR (metrics summed over the workers).
    "--config",
    "python:nexus_site.gunicorn_conf",
    "--worker-class",
    "uvicorn_worker.UvicornWorker",
)


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What ``web`` reads from the environment besides Django's settings."""

    bind: str
    workers: int
    migrate: bool
    access_log: bool = True


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def web_config() -> WebConfig:
    """``NEXUS_BIND``, ``NEXUS_WEB_WORKERS``, ``NEXUS_MIGRATE`` and
    ``NEXUS_ACCESS_LOG``, validated
    (an empty ``NEXUS_WEB_WORKERS`` means the default, as in .env.example)."""
    from nexus_site.env import env_bool, env_int

    bind = os.environ.get("NEXUS_BIND", DEFAULT_BIND).strip()
    match = _HOST_PORT.match(bind)
    if bind.startswith("unix:") and len(bind) > len("unix:"):
        pass
    elif match is None or not 0 < int(match["port"]) < 65536:
        raise ImproperlyConfigured(
            "NEXUS_BIND must be HOST:PORT (port 1-65535, e.g. 0.0.0.0:8000) or "
            f"unix:PATH; got {bind!r}."
        )
    default_workers = 2 * cores() + 1
    if os.environ.get("NEXUS_WEB_WORKERS", "").strip():
        workers = env_int("NEXUS_WEB_WORKERS", default_workers, minimum=1)
    else:
        workers = default_workers
    return WebConfig(
        bind=bind,
        workers=workers,
        migrate=env_bool("NEXUS_MIGRATE", True),
        access_log=env_bool("NEXUS_ACCESS_LOG", True),
    )


def gunicorn_argv(bind: str, workers: int, extra: Sequence[str] = ()) -> list[str]:
    """The web server's command line, run with this Python."""
    return [
        sys.executable,
        "-m",
        *GUNICORN_ASGI,
        "--bind",
        bind,
        "--workers",
        str(workers),
        *extra,
    ]


def celery_argv(role: str) -> list[str]:
    """Celery's command line for ``worker`` or ``beat``, run with this Python."""
    return [sys.executable, "-m", "celery", "-A", "nexus_site", role, "--loglevel=INFO"]


@contextlib.contextmanager
def _one_at_a_time(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (released on exit or death)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fail(message: str) -> int:
    print(f"scripts/serve: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str]) -> int:
    """Prepare the role, then replace this process with its server."""
    if len(argv) != 1 or argv[0] not in ROLES:
        return _fail(f"usage: scripts/serve {'|'.join(ROLES)}")
    role = argv[0]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_site.settings")
    try:
        config = web_config() if role == "web" else None
        import django

        django.setup()
    except ImproperlyConfigured as exc:
        return _fail(f"configuration error: {exc}")

    from django.conf import settings
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError
    from django.db import connections

    try:
        call_command("check", fail_level="ERROR")
    except SystemCheckError as exc:
        return _fail(f"configuration error: {exc}".strip())
    if config is None:
        command = celery_argv(role)
    else:
        # Nodes started together on one machine share the data directory:
        # one at a time, or their collectstatic runs trip over each other.
        with _one_at_a_time(Path(settings.DATA_DIR) / "serve-web.lock"):
            if config.migrate:
                call_command("migrate", interactive=False, verbosity=1)
            call_command("collectstatic", interactive=False, verbosity=1)
        extra = ["--access-logfile", "-"] if config.access_log else []
        command = gunicorn_argv(config.bind, config.workers, extra)
    connections.close_all()
    sys.stdout.flush()
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
