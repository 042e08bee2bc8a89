"""Production security settings: read from the environment, and `check --deploy` passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.settings.test_environment import ROOT, start_django

PRODUCTION = {
    "DJANGO_SECRET_KEY": "k3Jq9-vX2mP8sL5tR7wY1zA4bC6dE0fG-hI2jK4lM6nO8pQ0rS2tU4vW6xY8zA0",
    "DJANGO_ALLOWED_HOSTS": "nexus.example.com",
    "NEXUS_SECURE_COOKIES": "true",
    "NEXUS_HSTS_SECONDS": "31536000",
    "NEXUS_HSTS_INCLUDE_SUBDOMAINS": "true",
    "NEXUS_HSTS_PRELOAD": "true",
    "NEXUS_SSL_REDIRECT": "true",
    "NEXUS_TRUST_X_FORWARDED_PROTO": "true",
}


def _check_deploy(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from django.core.management import call_command; "
        "call_command('check', deploy=True, fail_level='WARNING')"
    )
    return start_django(tmp_path, code, **env)


def test_check_deploy_passes_with_the_production_settings(tmp_path: Path) -> None:
    result = _check_deploy(tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stderr


def test_check_deploy_warns_without_them(tmp_path: Path) -> None:
    result = _check_deploy(tmp_path, DJANGO_SECRET_KEY=PRODUCTION["DJANGO_SECRET_KEY"])
    assert result.returncode != 0
    for warning in ("W004", "W008", "W012", "W016"):
        assert warning in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEXUS_HSTS_SECONDS": "-1"}, "NEXUS_HSTS_SECONDS must be at least 0"),
        ({"NEXUS_HSTS_SECONDS": "a year"}, "NEXUS_HSTS_SECONDS must be a whole"),
        ({"NEXUS_SECURE_COOKIES": "sure"}, "NEXUS_SECURE_COOKIES must be one of"),
        (
            {"NEXUS_TRUST_X_FORWARDED_PROTO": "2"},
            "NEXUS_TRUST_X_FORWARDED_PROTO must be one of",
        ),
    ],
)
def test_a_bad_security_value_stops_start_up_naming_it(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = start_django(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_settings_reach_django(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER)"
    )
    result = start_django(tmp_path, code, **PRODUCTION)
    assert result.stdout.split() == [
        "True",
        "True",
        "31536000",
        "True",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "NEXUS_SECURE_COOKIES",
        "NEXUS_HSTS_SECONDS",
        "NEXUS_HSTS_INCLUDE_SUBDOMAINS",
        "NEXUS_HSTS_PRELOAD",
        "NEXUS_SSL_REDIRECT",
        "NEXUS_TRUST_X_FORWARDED_PROTO",
    ],
)
def test_each_security_setting_is_in_env_example_and_the_readme(name: str) -> None:
    assert f"\n{name}=" in (ROOT / ".env.example").read_text()
    assert f"| `{name}` |" in (ROOT / "README.md").read_text()


def test_a_forwarded_https_request_is_secure_and_plain_http_is_redirected(
    tmp_path: Path,
) -> None:
    code = (
        "from django.test import Client; c = Client(SERVER_NAME='nexus.example.com'); "
        "plain = c.get('/api/v1/pipeline/'); "
        "tls = c.get('/api/v1/pipeline/', headers={'X-Forwarded-Proto': 'https'}); "
        "probe = c.get('/healthz'); "
        "print(plain.status_code, plain['Location'], tls.status_code, "
        "tls['Strict-Transport-Security'], probe.status_code)"
    )
    result = start_django(tmp_path, code, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "301",
        "https://nexus.example.com/api/v1/pipeline/",
        "401",
        "max-age=31536000;",
        "includeSubDomains;",
        "preload",
        "200",
    ]


@pytest.mark.django_db
def test_explorer_pages_carry_a_self_only_content_security_policy(
    client: Client,
) -> None:
    policy = client.get("/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy


@pytest.mark.django_db
def test_the_api_docs_are_served_from_nexus_not_a_cdn(client: Client) -> None:
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "'unsafe-inline'" in page["Content-Security-Policy"]


def test_manage_py_check_deploy_passes_as_an_operator_runs_it(tmp_path: Path) -> None:
    """The command an operator runs, not only the call_command form."""
    env = {**PRODUCTION, "NEXUS_DATA_DIR": str(tmp_path / "data")}
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "NEXUS_"))
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=base | env | {"DJANGO_DEBUG": "false"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
