"""``python manage.py bench_spend --decisions 1000000``: the spend API over many usages.

On an empty PostgreSQL database (point ``DATABASE_URL`` at a scratch one), it
fills N routed decisions with their usage reports in server-side SQL (over
``--days`` days, 10 models, 20 clients, 8 backends in two zones), rolls them up
(``spend_rollup``, timed), then times ``GET /api/v1/spend/?group_by=model,day``
through Django's test client with an API key (the whole request: auth,
middleware, the query, JSON): the default window (budget ``global``'s current
period) and the whole filled range, each ``--rounds`` times after a warm-up,
median and p99 in ms. Then the same requests on the raw path
(``spend_report(use_rollup=False)``: every usage joined to its decision and
grouped) for comparison, and the plan of the rollup query.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from unittest import mock

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from routing.api import views
from routing.models import (
    Backend,
    PrivacyZone,
    RoutingDecision,
    SpendDaily,
    UsageReport,
)
from routing.services.api_keys import api_key_issue
from routing.services.spend_rollup import spend_rollup
from routing.spend import spend_report, spend_sql

TARGET_MS = 300.0
MODELS = 10
CLIENTS = 20
BACKENDS = 8
CHUNK = 100_000


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def _decision_columns(n_days: int) -> dict[str, str]:
    """SQL for each decision column, over ``g`` (the row number) and ``t``
    (its timestamp); JSON and other columns take their model default."""
    given = {
        "id": "gen_random_uuid()",
        "request_id": "'bench-spend-' || g",
        "created_at": "t",
        "outcome": "'route'",
        "requested_model": f"'bench-model-' || (g % {MODELS})",
        "model": f"'bench-model-' || (g % {MODELS})",
        # Each model is served by two of the backends.
        "backend_name": f"'bench-backend-' || (((g % {MODELS}) + (g / 7 % 2) * 3)"
        f" % {BACKENDS})",
        "estimated_cost_usd": "round((g % 97) / 10000.0, 6)",
        "client": f"'bench-client-' || (g / {MODELS} % {CLIENTS})",
    }
    columns = {}
    for field in RoutingDecision._meta.concrete_fields:
        column = field.column
        if column in given:
            columns[column] = given[column]
        elif field.null:
            columns[column] = "NULL"
        elif field.get_internal_type() == "JSONField":
            columns[column] = (
                "'[]'::jsonb" if field.get_default() == [] else "'{}'::jsonb"
            )
        elif field.get_internal_type() == "BooleanField":
            columns[column] = "false"
        elif field.get_internal_type() in {"CharField", "TextField"}:
            columns[column] = "''"
        else:
            columns[column] = "0"
    return columns


class Command(BaseCommand):
    help = "Fill N decisions with usage, roll them up and time GET /api/v1/spend/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--decisions", type=int, default=1_000_000)
        parser.add_argument("--days", type=int, default=60)
        parser.add_argument("--rounds", type=int, default=20)
        parser.add_argument("--raw-rounds", type=int, default=5)
        parser.add_argument(
            "--reuse",
            action="store_true",
            help="time the usage already in the database instead of filling",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_spend measures PostgreSQL: set DATABASE_URL.")
        name = connection.settings_dict["NAME"]
        existing = UsageReport.objects.count()
        if existing and not options["reuse"]:
            raise CommandError(
                f"Database {name!r} already holds {existing:,} usage reports; use an "
                "empty scratch database, or --reuse to time what is there."
            )
        if not options["reuse"]:
            self._fill(options["decisions"], options["days"])
        started = time.perf_counter()
        result = spend_rollup(time_budget_s=float("inf"))
        self.stdout.write(
            f"rollup: {result.rolled_up:,} reports in "
            f"{time.perf_counter() - started:.1f} s -> "
            f"{SpendDaily.objects.count():,} SpendDaily rows"
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self._time_api(options)

    def _fill(self, n: int, n_days: int) -> None:
        cloud = PrivacyZone.objects.get(name="cloud")
        local = PrivacyZone.objects.get(name="local")
        for i in range(BACKENDS):
            Backend.objects.get_or_create(
                name=f"bench-backend-{i}",
                defaults={
                    "kind": "vllm",
                    "base_url": f"http://127.0.0.1:9/{i}",
                    "privacy_zone": cloud if i % 2 else local,
                },
            )
        columns = _decision_columns(n_days)
        now = timezone.now()
        span_s = n_days * 86400
        started = time.perf_counter()
        values = ", ".join(columns.values()).replace("%", "%%")
        for low in range(1, n + 1, CHUNK):
            high = min(low + CHUNK - 1, n)
            sql = (
                f"WITH d AS (INSERT INTO {RoutingDecision._meta.db_table} "
                f"({', '.join(columns)}) SELECT {values} FROM "
                "(SELECT g, %s::timestamptz - make_interval(secs => (g * 7727 %% %s)) AS t "
                "FROM generate_series(%s::bigint, %s::bigint) AS g) AS rows "
                "RETURNING id, created_at, estimated_cost_usd) "
                f"INSERT INTO {UsageReport._meta.db_table} (decision_id, "
                "input_tokens, output_tokens, cost_usd, source, outcome, created_at, "
                "rolled_up) SELECT id, 200 + (estimated_cost_usd * 1e6)::int %% 800, "
                "50 + (estimated_cost_usd * 1e6)::int %% 300, "
                "round(estimated_cost_usd * 1.1, 6), 'upstream', 'ok', "
                "created_at + interval '2 seconds', false FROM d"
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, [now, span_s, low, high])
            self.stdout.write(
                f"  filled {high:,} / {n:,} ({time.perf_counter() - started:.0f} s)"
            )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.stdout.write(
            f"fill: {n:,} decisions + usage over {n_days} days in "
            f"{time.perf_counter() - started:.1f} s"
        )

    def _time(self, client: Client, url: str, rounds: int) -> tuple[float, float, int]:
        timings = []
        rows = 0
        for run in range(rounds + 2):  # two warm-up requests
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}")
            rows = len(response.json()["rows"])
            if run >= 2:
                timings.append(elapsed)
        return statistics.median(timings), _percentile(timings, 0.99), rows

    def _time_api(self, options: dict[str, Any]) -> None:
        key = api_key_issue(name=f"bench-spend-{int(time.time())}", is_admin=False)[1]
        client = Client(headers={"Authorization": f"Bearer {key}"})
        first = UsageReport.objects.order_by("created_at").first()
        assert first is not None
        since = first.created_at.astimezone(UTC).date().isoformat()
        until = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
        urls = [
            ("default window", "/api/v1/spend/?group_by=model,day"),
            (
                f"{since}..{until}",
                f"/api/v1/spend/?group_by=model,day&since={since}&until={until}",
            ),
        ]
        self.stdout.write(
            f"{UsageReport.objects.count():,} usage reports on PostgreSQL "
            f"({connection.settings_dict['NAME']}); {options['rounds']} rounds "
            "(raw: {raw}) after 2 warm-up requests".format(raw=options["raw_rounds"])
        )
        self.stdout.write(
            f"{'GET /api/v1/spend/?group_by=model,day':<44} {'path':<7} "
            f"{'median ms':>10} {'p99 ms':>10} {'rows':>6}"
        )
        worst = 0.0
        raw = partial(spend_report, use_rollup=False)
        with override_settings(ALLOWED_HOSTS=["testserver"]):
            for label, url in urls:
                median, p99, rows = self._time(client, url, options["rounds"])
                worst = max(worst, p99)
                self.stdout.write(
                    f"{label:<44} {'rollup':<7} {median:>10.1f} {p99:>10.1f} {rows:>6}"
                )
                with mock.patch.object(views, "spend_report", raw):
                    median, p99, rows = self._time(client, url, options["raw_rounds"])
                self.stdout.write(
                    f"{label:<44} {'raw':<7} {median:>10.1f} {p99:>10.1f} {rows:>6}"
                )
        verdict = "within" if worst <= TARGET_MS else "OVER"
        self.stdout.write(
            f"worst rollup p99 {worst:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target"
        )
        self._explain(since, until)

    def _explain(self, since: str, until: str) -> None:
        sql, params = spend_sql(
            since=datetime.fromisoformat(since).replace(tzinfo=UTC),
            until=datetime.fromisoformat(until).replace(tzinfo=UTC),
            keys=("model", "day"),
        )
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            plan = [row[0] for row in cursor.fetchall()]
        self.stdout.write("plan of the rollup query (indexes used):")
        for line in plan:
            if "Scan" in line or "Aggregate" in line or "Append" in line:
                self.stdout.write("  " + line.strip())
