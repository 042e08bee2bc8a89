"""The background-work settings are read from the environment and documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.settings.test_environment import ROOT, start_django

BACKGROUND_SETTINGS = [
    "NEXUS_BUDGET_RECONCILE_INTERVAL_SECONDS",
    "NEXUS_HEALTH_PROBE_INTERVAL_SECONDS",
    "NEXUS_HEALTH_PROBE_TIMEOUT_SECONDS",
    "NEXUS_HEALTH_FAILURES_BEFORE_UNHEALTHY",
    "NEXUS_BUDGET_ALERT_CHECK_INTERVAL_SECONDS",
    "NEXUS_BUDGET_ALERT_TIMEOUT_S",
    "NEXUS_BUDGET_ALERT_MAX_ATTEMPTS",
    "NEXUS_BUDGET_ALERT_RETRY_BACKOFF_S",
    "NEXUS_DECISION_RETENTION_EXACT",
    "NEXUS_DECISION_PARTITION_PERIOD",
    "NEXUS_DECISION_PARTITIONS_AHEAD",
    "NEXUS_DECISION_PARTITION_EXPIRY",
]


@pytest.mark.parametrize("name", BACKGROUND_SETTINGS)
def test_each_setting_is_in_env_example_and_the_readme(name: str) -> None:
    assert f"\n{name}=" in (ROOT / ".env.example").read_text()
    assert f"| `{name}` |" in (ROOT / "README.md").read_text()


def test_a_zero_interval_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    result = start_django(tmp_path, NEXUS_HEALTH_PROBE_INTERVAL_SECONDS="0")
    assert result.returncode != 0
    assert "NEXUS_HEALTH_PROBE_INTERVAL_SECONDS must be at least 1" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "NEXUS_DECISION_PARTITION_PERIOD",
            "year",
            "must be one of month, week, day; got 'year'",
        ),
        ("NEXUS_DECISION_PARTITIONS_AHEAD", "0", "must be at least 1"),
        ("NEXUS_DECISION_PARTITION_EXPIRY", "archive", "must be one of drop, detach"),
        ("NEXUS_DECISION_RETENTION_EXACT", "maybe", "must be one of 1/true/yes/on"),
    ],
)
def test_a_bad_partition_setting_stops_start_up_naming_the_variable(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    result = start_django(tmp_path, **{name: value})
    assert result.returncode != 0
    assert f"{name} {message}" in result.stderr


def test_the_intervals_drive_the_beat_schedule(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings; s = settings.CELERY_BEAT_SCHEDULE; "
        "print(s['budget-reconcile-all']['schedule'].total_seconds(), "
        "s['backend-probe-all']['schedule'].total_seconds(), "
        "s['backend-probe-all']['options']['expires'])"
    )
    result = start_django(
        tmp_path,
        code,
        NEXUS_BUDGET_RECONCILE_INTERVAL_SECONDS="7",
        NEXUS_HEALTH_PROBE_INTERVAL_SECONDS="11",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7.0", "11.0", "11"]


def test_the_alert_check_interval_drives_its_beat_entry(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings; e = settings.CELERY_BEAT_SCHEDULE"
        "['budget-alerts-check']; "
        "print(e['schedule'].total_seconds(), e['options']['expires'], "
        "settings.NEXUS_BUDGET_ALERT_MAX_ATTEMPTS)"
    )
    result = start_django(
        tmp_path,
        code,
        NEXUS_BUDGET_ALERT_CHECK_INTERVAL_SECONDS="13",
        NEXUS_BUDGET_ALERT_MAX_ATTEMPTS="2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["13.0", "13", "2"]


def test_zero_alert_attempts_stop_start_up_naming_the_variable(tmp_path: Path) -> None:
    result = start_django(tmp_path, NEXUS_BUDGET_ALERT_MAX_ATTEMPTS="0")
    assert result.returncode != 0
    assert "NEXUS_BUDGET_ALERT_MAX_ATTEMPTS must be at least 1" in result.stderr
