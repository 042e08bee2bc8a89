"""The container's way in, on this machine: a clean virtualenv built by
scripts/build-env (the Dockerfile's build step), then scripts/serve web on an
empty SQLite database answers every kind of path. Slow (about a minute); CI
runs it with the rest."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.settings.test_serve import ROOT, clean_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str, str]:
    """Status, content type and body of ``GET path``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        return response.status, response.getheader("Content-Type", ""), body
    finally:
        conn.close()


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with requirements.txt installed from its wheel set alone."""
    work = tmp_path_factory.mktemp("clean-install")
    venv = work / "venv"
    env = {**os.environ, "NEXUS_PYTHON": sys._base_executable}  # type: ignore[attr-defined]
    env.pop("VIRTUAL_ENV", None)
    built = subprocess.run(
        ["scripts/build-env", str(venv), str(work / "wheels")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return venv


@pytest.fixture
def served(clean_venv: Path, tmp_path: Path) -> Iterator[int]:
    """scripts/serve web from the clean virtualenv on a free port (empty database)."""
    port = free_port()
    data = tmp_path / "data"
    env = clean_env(
        tmp_path,
        VIRTUAL_ENV=str(clean_venv),
        DJANGO_SECRET_KEY="clean-install-test-key",
        DATABASE_URL=f"sqlite:///{data / 'nexus.sqlite3'}",
        NEXUS_BIND=f"127.0.0.1:{port}",
        NEXUS_WEB_WORKERS="2",
    )
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        ["scripts/serve", "web"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "no answer on /healthz within 120 s"
            try:
                if get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_a_clean_virtualenv_serves_health_readiness_admin_and_api_docs(
    served: int,
) -> None:
    assert get(served, "/healthz")[:2] == (200, "application/json")
    status, _, body = get(served, "/readyz")
    assert (status, body) == (200, '{"status": "ok", "checks": {"database": "ok"}}')
    status, content_type, page = get(served, "/admin/login/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]+\.css)"', page)
    assert stylesheet, "the admin's stylesheet is not a collected (hashed) file"
    assert get(served, stylesheet[1])[0] == 200
    status, content_type, docs = get(served, "/api/v1/docs/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    script = re.search(r'src="(/static/drf_spectacular_sidecar/[^"]+\.js)"', docs)
    assert script, "Swagger UI is not served from Nexus's own static files"
    assert get(served, script[1])[0] == 200


def test_the_dockerfile_builds_with_scripts_build_env_and_runs_scripts_serve() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "scripts/build-env /opt/venv" in dockerfile
    assert 'ENTRYPOINT ["scripts/serve"]' in dockerfile
    assert 'CMD ["web"]' in dockerfile
    compose = (ROOT / "compose.yaml").read_text()
    for role in ("web", "worker", "beat"):
        assert f'command: ["{role}"]' in compose
    assert "/readyz" in compose
