"""scripts/serve: a bad setting stops the start with one line naming it; management
commands find the embedded default's secret-key file without extra variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_site.serve import DEFAULT_BIND, cores, web_config

ROOT = Path(__file__).resolve().parents[2]


def clean_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """This environment without Nexus's variables, data under ``tmp_path``."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "CELERY_", "NEXUS_"))
        and key != "VIRTUAL_ENV"
    }
    return base | {"NEXUS_DATA_DIR": str(tmp_path / "data")} | env


def run(
    argv: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEXUS_BIND": "8000"}, "NEXUS_BIND must be HOST:PORT"),
        ({"NEXUS_BIND": "0.0.0.0:70000"}, "NEXUS_BIND must be HOST:PORT"),
        ({"NEXUS_WEB_WORKERS": "0"}, "NEXUS_WEB_WORKERS must be at least 1"),
        ({"NEXUS_WEB_WORKERS": "many"}, "NEXUS_WEB_WORKERS must be a whole number"),
        ({"NEXUS_MIGRATE": "later"}, "NEXUS_MIGRATE must be one of"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must start with sqlite:///"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY must be set"),
    ],
)
def test_serve_web_with_a_bad_setting_exits_with_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    settings_env = clean_env(tmp_path, DJANGO_SECRET_KEY="k", VIRTUAL_ENV=sys.prefix)
    result = run(["scripts/serve", "web"], settings_env | env)
    assert result.returncode == 2
    assert result.stderr.startswith("scripts/serve: configuration error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data" / "nexus.sqlite3").exists()  # nothing migrated


def test_serve_worker_checks_the_configuration_too(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        DJANGO_SECRET_KEY="k",
        CELERY_BROKER_URL="kafka://x",
        VIRTUAL_ENV=sys.prefix,
    )
    result = run(["scripts/serve", "worker"], env)
    assert result.returncode == 2
    assert "CELERY_BROKER_URL must be" in result.stderr


def test_serve_without_a_role_says_how_to_call_it(tmp_path: Path) -> None:
    result = run(["scripts/serve", "all"], clean_env(tmp_path, VIRTUAL_ENV=sys.prefix))
    assert result.returncode == 2
    assert result.stderr == "scripts/serve: usage: scripts/serve web|worker|beat\n"


def test_serve_without_a_python_environment_says_so(tmp_path: Path) -> None:
    env = clean_env(tmp_path, VIRTUAL_ENV=str(tmp_path / "no-venv"))
    result = run(["scripts/serve", "web"], env)
    assert result.returncode == 2
    assert f"no Python environment at {tmp_path / 'no-venv'}" in result.stderr


def test_web_defaults_to_loopback_and_two_workers_per_core_plus_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("NEXUS_BIND", "NEXUS_WEB_WORKERS", "NEXUS_MIGRATE"):
        monkeypatch.delenv(name, raising=False)
    config = web_config()
    assert (config.bind, config.workers, config.migrate) == (
        DEFAULT_BIND,
        2 * cores() + 1,
        True,
    )
    monkeypatch.setenv("NEXUS_WEB_WORKERS", "")  # as copied from .env.example
    assert web_config().workers == 2 * cores() + 1


@pytest.mark.parametrize("bind", ["[::]:9000", "0.0.0.0:80", "unix:/run/nexus.sock"])
def test_web_binds_to_an_address_or_a_unix_socket(
    monkeypatch: pytest.MonkeyPatch, bind: str
) -> None:
    monkeypatch.setenv("NEXUS_BIND", bind)
    assert web_config().bind == bind


def test_a_management_command_finds_the_embedded_secret_key_file(
    tmp_path: Path,
) -> None:
    env = clean_env(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret-key").write_text("written-by-scripts-run\n")
    manage = [sys.executable, "manage.py"]
    migrated = run([*manage, "migrate", "--no-input", "-v", "0"], env)
    assert migrated.returncode == 0, migrated.stderr
    loaded = run([*manage, "load_demo", "--no-traffic"], env)
    assert loaded.returncode == 0, loaded.stderr
    result = run([*manage, "generate_decisions", "10"], env)
    assert result.returncode == 0, result.stderr
    assert "Wrote 10 sample decisions" in result.stdout


def test_without_a_key_or_its_file_a_command_says_how_to_get_one(
    tmp_path: Path,
) -> None:
    result = run([sys.executable, "manage.py", "check"], clean_env(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("manage.py: configuration error: ")
    assert "run scripts/run once" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
