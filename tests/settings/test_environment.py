"""Settings come from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import IN_CI, require_service

ROOT = Path(__file__).resolve().parents[2]


def start_django(
    tmp_path: Path, code: str = "print('ok')", **env: str
) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "CELERY_", "NEXUS_"))
    }
    base |= {
        "NEXUS_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "k",
    }
    base |= env
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=ROOT,
        env=base | {"DJANGO_SETTINGS_MODULE": "nexus_site.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DJANGO_SECRET_KEY": ""},
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off",
        ),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG must be one of 1/true/yes/on"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must start with sqlite:///"),
        ({"CELERY_BROKER_URL": "kafka://x"}, "CELERY_BROKER_URL must be filesystem://"),
        (
            {"DJANGO_ALLOWED_HOSTS": " , "},
            "DJANGO_ALLOWED_HOSTS must be a comma-separated",
        ),
        (
            {"NEXUS_RESERVATION_TTL_SECONDS": "soon"},
            "NEXUS_RESERVATION_TTL_SECONDS must be a whole",
        ),
        (
            {"NEXUS_SELECTION_STRATEGY": "best"},
            "NEXUS_SELECTION_STRATEGY must be one of",
        ),
        (
            {
                "DATABASE_URL": "postgres://u@127.0.0.1:9/db",
                "NEXUS_PG_PREPARED_STATEMENTS": "sometimes",
            },
            "NEXUS_PG_PREPARED_STATEMENTS must be one of",
        ),
        ({"NEXUS_REDIS_URL": "memcached://x"}, "NEXUS_REDIS_URL must be redis://"),
        (
            {"NEXUS_LOGIN_FAILURES_PER_USER": "0"},
            "NEXUS_LOGIN_FAILURES_PER_USER must be at least 1",
        ),
        (
            {"NEXUS_API_KEY_FAILURE_WINDOW_SECONDS": "1m"},
            "NEXUS_API_KEY_FAILURE_WINDOW_SECONDS must be a whole",
        ),
        ({"NEXUS_MAX_MESSAGES": "lots"}, "NEXUS_MAX_MESSAGES must be a whole"),
        (
            {"NEXUS_MAX_CONTENT_PARTS": "0"},
            "NEXUS_MAX_CONTENT_PARTS must be at least 1",
        ),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = start_django(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_defaults_start_with_debug_on_and_no_secret(tmp_path: Path) -> None:
    result = start_django(tmp_path, DJANGO_DEBUG="true", DJANGO_SECRET_KEY="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_default_broker_is_the_filesystem_with_its_folders_created(
    tmp_path: Path,
) -> None:
    assert start_django(tmp_path).returncode == 0
    broker = tmp_path / "data" / "broker"
    assert {p.name for p in broker.iterdir()} >= {"queue", "processed", "control"}


def test_the_default_database_is_a_sqlite_file_in_wal_mode(tmp_path: Path) -> None:
    code = (
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])"
    )
    result = start_django(tmp_path, code=code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "wal"
    assert (tmp_path / "data" / "nexus.sqlite3").exists()


@pytest.mark.parametrize(
    ("switch", "options"),
    [
        (
            {},
            "{'pool': {'min_size': 1, 'max_size': 10, 'timeout': 5}, "
            "'server_side_binding': True, 'prepare_threshold': 5}",
        ),
        (
            {"NEXUS_PG_PREPARED_STATEMENTS": "false", "NEXUS_PG_POOL_SIZE": "4"},
            "{'pool': {'min_size': 1, 'max_size': 4, 'timeout': 5}}",
        ),
    ],
)
def test_postgresql_prepares_statements_unless_turned_off(
    tmp_path: Path, switch: dict[str, str], options: str
) -> None:
    code = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])"
    result = start_django(
        tmp_path, code=code, DATABASE_URL="postgres://u@127.0.0.1:9/db", **switch
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == options


def test_ci_runs_the_suite_against_postgresql() -> None:
    if not IN_CI:
        pytest.skip("only CI is required to use PostgreSQL")
    assert connection.vendor == "postgresql", "CI must set DATABASE_URL to PostgreSQL"


def test_the_configured_celery_broker_accepts_connections() -> None:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    try:
        with Connection(url, transport_options=options, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
            reachable = True
    except Exception:  # noqa: BLE001 - any failure means the broker is not there
        reachable = False
    require_service(reachable, f"Celery broker {url} is not reachable")
    if IN_CI:
        assert url.startswith("redis://"), "CI must run against Redis"


def test_a_redis_broker_gives_up_connecting_after_two_seconds(tmp_path: Path) -> None:
    code = "from django.conf import settings; print(settings.CELERY_BROKER_TRANSPORT_OPTIONS)"
    result = start_django(tmp_path, code, CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'socket_connect_timeout': 2}"
