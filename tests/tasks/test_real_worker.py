"""A real Celery worker and beat run our tasks against the configured broker.

The worker and beat are subprocesses (``celery -A nexus_site ...``) using the
test's own database, so the test database must be one another process can open:
PostgreSQL (CI). On SQLite the test database lives in memory, so these tests skip
locally with the reason shown; in CI (``CI=true``) a missing service fails them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from routing.models import Backend, Budget
from routing.pipeline.periods import budget_period
from tests.conftest import require_service
from tests.factories import BackendFactory
from tests.http_servers import FakeBackend

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _broker_reachable() -> bool:
    from kombu import Connection

    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            connect_timeout=3,
        ) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:  # noqa: BLE001 - any failure means the broker is not there
        return False
    return True


def _test_database_url() -> str:
    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}"


@pytest.fixture
def celery_env(tmp_path: Path) -> dict[str, str]:
    """Environment for worker and beat: the test database, the configured broker."""
    require_service(
        connection.vendor == "postgresql",
        "needs PostgreSQL: a Celery worker cannot open SQLite's in-memory test "
        "database (set DATABASE_URL=postgres://...; CI does)",
    )
    require_service(
        _broker_reachable(),
        f"needs a reachable Celery broker; {settings.CELERY_BROKER_URL} is not",
    )
    from nexus_site.celery import app

    app.control.purge()  # no stale messages from earlier runs
    return {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "NEXUS_DATA_DIR": str(settings.DATA_DIR),  # shared filesystem broker, if any
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "NEXUS_BUDGET_RECONCILE_INTERVAL_SECONDS": "1",
        "NEXUS_HEALTH_PROBE_INTERVAL_SECONDS": "3600",
        "NEXUS_HEALTH_PROBE_TIMEOUT_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def celery(args: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    """Run ``celery -A nexus_site <args>``; always stop it, show its log on failure."""
    command = [sys.executable, "-m", "celery", "-A", "nexus_site", *args]
    with running(command, env, log):
        yield


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    """Run ``command`` in its own session; always stop it, show its log on failure."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    except BaseException:
        print(f"--- {log.name} ---\n{log.read_text(errors='replace')}")
        raise
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def worker_args() -> list[str]:
    return [
        "worker",
        "--pool=solo",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"test-{uuid.uuid4().hex[:8]}@%h",
    ]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {WAIT_S:.0f} s waiting for {what}")


def test_a_task_sent_from_the_test_is_executed_by_the_worker(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    from routing.tasks import backend_probe

    fake = FakeBackend().start()
    try:
        backend = BackendFactory(kind="ollama", base_url=fake.url)
        with celery(worker_args(), celery_env, tmp_path / "worker.log"):
            backend_probe.delay(backend.pk)
            wait_for(
                lambda: Backend.objects.get(pk=backend.pk).health == "healthy",
                "the worker to probe the backend",
            )
    finally:
        fake.stop()
    assert fake.requests == ["/api/tags"]


def test_beat_schedules_a_reconciliation_that_corrects_injected_drift(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    start, end = budget_period(timezone.now().date(), 1)
    Budget.objects.filter(name="global").update(
        period_start=start, period_end=end, spent_usd=0, reserved_usd=0
    )
    beat_args = ["beat", "--loglevel=INFO", "-s", str(tmp_path / "beat-schedule")]
    with (
        celery(worker_args(), celery_env, tmp_path / "worker.log"),
        celery(beat_args, celery_env, tmp_path / "beat.log"),
    ):
        Budget.objects.filter(name="global").update(spent_usd=Decimal("123.45"))
        wait_for(
            lambda: Budget.objects.get(name="global").spent_usd == 0,
            "a beat-scheduled reconciliation to correct the drift",
        )
    assert (
        "Sending due task budget-reconcile-all" in (tmp_path / "beat.log").read_text()
    )


def test_scripts_serve_worker_and_beat_run_the_periodic_reconciliation(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    """The production entrypoint's worker and beat, as an operator starts them."""
    start, end = budget_period(timezone.now().date(), 1)
    Budget.objects.filter(name="global").update(
        period_start=start, period_end=end, spent_usd=0, reserved_usd=0
    )
    env = {**celery_env, "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}
    with (
        running(["scripts/serve", "worker"], env, tmp_path / "serve-worker.log"),
        running(["scripts/serve", "beat"], env, tmp_path / "serve-beat.log"),
    ):
        Budget.objects.filter(name="global").update(spent_usd=Decimal("123.45"))
        wait_for(
            lambda: Budget.objects.get(name="global").spent_usd == 0,
            "the worker started by scripts/serve to run beat's reconciliation",
        )
    beat_log = (tmp_path / "serve-beat.log").read_text()
    assert "Sending due task budget-reconcile-all" in beat_log
    worker_log = (tmp_path / "serve-worker.log").read_text()
    assert "Task routing.budget_reconcile_all[" in worker_log
