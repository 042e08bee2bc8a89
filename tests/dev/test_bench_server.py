"""The in-server benchmark: its fleet as rows, and a short real run through gunicorn."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from routing.adapters import budget_snapshots, build_config_snapshot
from routing.dev.bench_litellm import pipeline_bench
from routing.dev.bench_server import FLEET_SIZE, fleet_load, route_body

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_the_fleet_loader_writes_the_benchmark_fleet_as_rows() -> None:
    intended = pipeline_bench.build_fleet(FLEET_SIZE)

    version = fleet_load(intended, pipeline_bench.BUDGET)

    loaded = build_config_snapshot(version)
    assert {b.name: b for b in loaded.backends} == {
        b.name: b for b in intended.backends
    }
    assert dict(loaded.zones) == {**dict(intended.zones)}
    assert dict(loaded.aliases) == dict(intended.aliases)
    assert loaded.policies == intended.policies
    (budget,) = budget_snapshots()
    expected = pipeline_bench.BUDGET
    assert (
        budget.monthly_limit_usd,
        budget.soft_limit_percent,
        budget.spent_usd,
        budget.reserved_usd,
    ) == (
        expected.monthly_limit_usd,
        expected.soft_limit_percent,
        expected.spent_usd,
        expected.reserved_usd,
    )


def test_the_api_body_is_the_benchmark_request_as_a_dry_run() -> None:
    body = route_body()

    assert body["messages"] == pipeline_bench.REQUEST.body["messages"]
    assert body["nexus"] == {
        "min_tier": pipeline_bench.REQUEST.min_tier,
        "dry_run": True,
    }


def test_a_short_run_measures_the_server_and_in_process_on_the_same_decision() -> None:
    # A scratch SQLite database of its own, whatever database the tests use.
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "routing.dev.bench_server",
            "--requests=30",
            "--rounds=2",
            "--warmup=5",
            "--workers=1",
            "--threads=2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert run.returncode == 0, run.stderr
    rows = {
        match["side"]: match
        for match in re.finditer(
            r"^(?P<side>server|in-process) .*?\s(?P<calls>\d+)\s+(?P<p50>[\d.]+)\s+"
            r"(?P<p99>[\d.]+)\s+(?P<decision>\S+)$",
            run.stdout,
            re.MULTILINE,
        )
    }
    assert set(rows) == {"server", "in-process"}, run.stdout
    for row in rows.values():
        assert int(row["calls"]) == 30
        assert 0 < float(row["p50"]) <= float(row["p99"])
    assert rows["server"]["decision"] == rows["in-process"]["decision"]
    assert rows["server"]["decision"].startswith("route:backend-")
    assert "server p50 / in-process p50 = " in run.stdout
    assert "server errors" not in run.stdout
