"""``manage.py bench_storage``: bytes per decision on PostgreSQL, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.db import connection

from routing.models import (
    ApiKey,
    Backend,
    DecisionTemplate,
    RoutingDecision,
    TrafficPolicy,
)

ROOT = Path(__file__).resolve().parents[2]


def test_it_reports_each_size_and_leaves_no_row_and_no_table_behind(
    postgres: None,
) -> None:
    kept = (Backend, RoutingDecision, ApiKey, DecisionTemplate)
    counts = [m.objects.count() for m in kept]
    out = StringIO()
    call_command("bench_storage", "--sizes", "5,12", "--calls", "40", stdout=out)
    lines = out.getvalue().splitlines()[2:]
    rows = [line.split() for line in lines[0::2]]
    templates = lines[1::2]
    assert [row[0] for row in rows] == ["5", "12"]
    for row in rows:
        decision, exclusions, total = (int(v) for v in row[1:4])
        assert decision > 0 and total == decision + exclusions
        assert int(row[6]) > int(row[7]) > 0  # the API's JSON, more than stored
    # Each size's decisions after the first are deltas against one template.
    assert all("+ 1 decision template(s)" in line for line in templates), templates
    assert [m.objects.count() for m in kept] == counts
    assert not TrafficPolicy.objects.filter(name__startswith="bench-tier").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.routing_routingdecision')")
        assert cursor.fetchone() == (None,)


def test_on_sqlite_it_says_the_figure_is_postgresql_only(tmp_path: Path) -> None:
    """Run as an operator would on the embedded default (whatever database the
    test suite itself uses)."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'nexus.sqlite3'}",
        "NEXUS_DATA_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "test",
    }
    run = subprocess.run(
        [sys.executable, "manage.py", "bench_storage", "--calls", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "measures PostgreSQL storage" in run.stderr
