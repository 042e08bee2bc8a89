"""``python manage.py bench_backtest``: the backtest figure (PostgreSQL).

Builds, once, a fleet of ``--backends`` backends and ``--decisions`` recorded
decisions: ``--seeds`` real decisions routed through ``route_request`` (mixed
models, constraints and strategies; routes, queues and rejects), then copied
in SQL with new ids and times spread over the last seven days (each a copy
of its decision's stored form: compact, so a replay reads its blob). Then times a backtest of all of them
under a draft that moves the private backends of one zone to the cloud, and
prints the time, the decisions per second, the distinct inputs, when progress
was first visible and the peak memory of this process and of the workers.
"""

from __future__ import annotations

import random
import resource
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone

from routing.adapters import shared_pipeline_reset
from routing.api.draft_changes import change_write
from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Budget,
    DecisionTemplate,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
)
from routing.pipeline import RoutingRequest
from routing.pipeline.rules import parse_privacy
from routing.replay import replay_body
from routing.services.backtests import backtest_request, backtest_run
from routing.services.config import config_save
from routing.services.drafts import DraftChange, draft_create
from routing.services.routing import route_request

MODELS = ("llama3.1:8b", "qwen2.5:14b", "gpt-4o", "gpt-4o-mini", "claude-sonnet")
ZONES = ("local", "eu-private", "cloud")
STRATEGIES = (("smart", 0.7), ("round_robin", 0.15), ("random", 0.15))


class Command(BaseCommand):
    help = "Time a backtest of N recorded decisions over a fleet (PostgreSQL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--decisions", type=int, default=1_000_000)
        parser.add_argument("--seeds", type=int, default=20_000)
        parser.add_argument("--backends", type=int, default=50)
        parser.add_argument("--workers", type=int, default=None)
        parser.add_argument(
            "--build-only", action="store_true", help="build the data, do not run"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("The backtest figure needs PostgreSQL (DATABASE_URL).")
        have = RoutingDecision.objects.count()
        if have == 0:
            self._build(options["backends"], options["seeds"], options["decisions"])
        elif have != options["decisions"]:
            raise CommandError(
                f"The database holds {have:,} decisions, not {options['decisions']:,}; "
                "use an empty database (or the same --decisions)."
            )
        if not options["build_only"]:
            self._run(options["workers"])

    # -- data -------------------------------------------------------------------

    def _build(self, backends: int, seeds: int, decisions: int) -> None:
        started = time.perf_counter()
        rng = random.Random(7)
        self._fleet(backends)
        self.stdout.write(f"fleet of {backends} backends")
        settled = 0
        for strategy, share in STRATEGIES:
            with override_settings(NEXUS_SELECTION_STRATEGY=strategy):
                shared_pipeline_reset()
                for _ in range(int(seeds * share)):
                    self._ask(rng)
                    settled += 1
        shared_pipeline_reset()
        self.stdout.write(
            f"{settled:,} decisions routed ({time.perf_counter() - started:.0f} s)"
        )
        self._stored_forms()
        self._copy(decisions)
        self.stdout.write(
            f"{RoutingDecision.objects.count():,} decisions "
            f"({time.perf_counter() - started:.0f} s)"
        )

    def _fleet(self, count: int) -> None:
        config_save(
            instance=PrivacyZone(name="eu-private", private=True), actor="bench"
        )
        zones = {z.name: z for z in PrivacyZone.objects.all()}
        for i in range(count):
            zone = ZONES[i % 3]
            backend = Backend(
                name=f"b{i:02d}",
                kind="vllm",
                base_url=f"http://127.0.0.1:9/b{i:02d}",
                privacy_zone=zones[zone],
                capability_tier=1 + i % 5,
                priority=(i * 7) % 100,
            )
            config_save(instance=backend, actor="bench")
            price = Decimal("0") if zone != "cloud" else Decimal("0.001") * (1 + i % 4)
            for model in {MODELS[i % 5], MODELS[(i + 2) % 5]}:
                offer = BackendModel(
                    backend=backend,
                    name=model,
                    context_window=8192 * (1 + i % 4),
                    tools=i % 2 == 0,
                    json_mode=i % 3 != 2,
                    input_cost_per_1k=price,
                    output_cost_per_1k=price * 2,
                )
                config_save(instance=offer, actor="bench")
        # Observed state, as probes and traffic would leave it.
        Backend.objects.filter(
            name__in=[f"b{i:02d}" for i in range(9, count, 10)]
        ).update(health="loading", loading_eta_ms=20_000)
        for i in range(count):
            Backend.objects.filter(name=f"b{i:02d}").update(
                pending_requests=i % 4, latency_ema_ms=100 + (i * 37) % 900
            )
        config_save(instance=Alias(name="fast", target="llama3.1:8b"), actor="bench")
        config_save(
            instance=TrafficPolicy(
                name="claude-private", model_pattern="claude*", privacy="restricted"
            ),
            actor="bench",
        )
        config_save(
            instance=TrafficPolicy(name="gpt-tier", model_pattern="gpt-4o", min_tier=3),
            actor="bench",
        )
        budget = Budget.objects.get(name="global")
        budget.monthly_limit_usd = None
        config_save(instance=budget, actor="bench")

    def _ask(self, rng: random.Random) -> None:
        model = rng.choice((*MODELS, *MODELS, "fast", "no-such-model"))
        roll = rng.random()
        privacy = (
            None
            if roll < 0.6
            else "restricted"
            if roll < 0.85
            else "zone:eu-private"
            if roll < 0.95
            else "zone:cloud"
        )
        request = RoutingRequest(
            model=model,
            body=replay_body(
                input_tokens=rng.randint(10, 30_000),
                output_tokens=rng.choice((0, 256, 1024)),
                vision=False,
                tools=rng.random() < 0.2,
                json_mode=rng.random() < 0.2,
            ),
            privacy=parse_privacy(privacy) if privacy else None,
            sources={"privacy": "header"} if privacy else {},
        )
        route_request(
            request=request, request_id="bench", client=rng.choice(("app", "batch"))
        )

    def _stored_forms(self) -> None:
        """How the routed decisions are stored: per form (2: compact JSON, 3: a
        delta against a decision template), how many and the mean stored
        ``trace`` (``pg_column_size``) and JSON text."""
        table = RoutingDecision._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT trace->>'v', count(*), avg(pg_column_size(trace)), "
                f"avg(octet_length(trace::text)) FROM {table} GROUP BY 1 ORDER BY 1"
            )
            for form, count, stored, text in cursor.fetchall():
                self.stdout.write(
                    f"  stored form {form}: {count:,} decisions, trace {stored:.0f} "
                    f"bytes stored ({text:.0f} bytes of JSON text)"
                )
            cursor.execute(
                f"SELECT count(*), coalesce(sum(octet_length(text)), 0) "
                f"FROM {DecisionTemplate._meta.db_table}"
            )
            count, size = cursor.fetchone()
        self.stdout.write(f"  {count} decision templates, {size:,} bytes of text")

    def _copy(self, decisions: int) -> None:
        """Copies of the routed decisions up to ``decisions`` rows, in SQL."""
        table = RoutingDecision._meta.db_table
        seeds = RoutingDecision.objects.count()
        missing = decisions - seeds
        copies = -(-missing // seeds)
        columns = [
            f.column
            for f in RoutingDecision._meta.concrete_fields
            if f.column not in ("id", "created_at")
        ]
        listed = ", ".join(columns)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (id, created_at, {listed}) "
                f"SELECT gen_random_uuid(), now() - random() * interval '7 days', "
                f"{listed} FROM {table}, generate_series(1, %s) AS n "
                "LIMIT %s",
                [copies, missing],
            )
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {table}")

    # -- the figure -------------------------------------------------------------

    def _run(self, workers: int | None) -> None:
        changes = [
            DraftChange("backends", "update", f"b{i:02d}", {"privacy_zone": "cloud"})
            for i in range(1, 50, 3)
            if Backend.objects.filter(name=f"b{i:02d}").exists()
        ]
        draft = draft_create(
            name="eu-private to cloud",
            changes=changes,
            actor="bench",
            write=change_write,
        )
        now = timezone.now()
        backtest, _ = backtest_request(
            draft_id=draft.pk,
            since=now - timedelta(days=8),
            until=now + timedelta(minutes=1),
            filters={},
            actor="bench",
            enqueue=False,
        )
        started = time.perf_counter()
        marks: dict[str, float] = {}

        def progress(done: int, total: int) -> None:
            marks.setdefault("first", time.perf_counter() - started)
            if done:
                marks.setdefault("first_done", time.perf_counter() - started)

        finished = backtest_run(
            backtest_id=backtest.pk,
            write=change_write,
            workers=workers,
            progress=progress,
        )
        elapsed = time.perf_counter() - started
        if finished is None or finished.summary is None:
            raise CommandError(
                f"The backtest did not finish: {finished and finished.error}"
            )
        summary = finished.summary
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        self.stdout.write(
            f"{summary['total']:,} decisions in {elapsed:.1f} s "
            f"({summary['total'] / elapsed:,.0f}/s); "
            f"{summary['distinct_inputs']:,} distinct inputs; "
            f"{summary['changed']:,} changed; "
            f"privacy violations {summary['privacy_violations']}\n"
            f"progress first shown after {marks.get('first', 0):.2f} s, first "
            f"batch counted after {marks.get('first_done', 0):.2f} s\n"
            f"peak RSS: this process {own:.0f} MiB, largest worker {children:.0f} MiB\n"
            f"outcomes {summary['outcomes']}"
        )
