"""The metrics settings: the scrape token, and the multiprocess directory
checked at start (empty counts as unset, a missing directory stops start-up)."""

from __future__ import annotations

from pathlib import Path

from tests.settings.test_environment import start_django

PRINT_MODE = (
    "from django.conf import settings; from routing.metrics import multiprocess_mode; "
    "print(repr(settings.NEXUS_METRICS_TOKEN), multiprocess_mode())"
)


def test_a_missing_multiprocess_directory_stops_start_up_naming_it(
    tmp_path: Path,
) -> None:
    run = start_django(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "nowhere"))
    assert run.returncode != 0
    assert "PROMETHEUS_MULTIPROC_DIR must be an existing directory" in run.stderr


def test_an_empty_multiprocess_directory_means_one_process(tmp_path: Path) -> None:
    run = start_django(tmp_path, PRINT_MODE, PROMETHEUS_MULTIPROC_DIR="")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["''", "False"]


def test_an_existing_directory_turns_multiprocess_mode_on(tmp_path: Path) -> None:
    run = start_django(
        tmp_path,
        PRINT_MODE,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        NEXUS_METRICS_TOKEN=" tok ",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["'tok'", "True"]
