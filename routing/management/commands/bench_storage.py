"""``python manage.py bench_storage``: stored bytes per decision on PostgreSQL.

For each fleet size (default 5, 50, 200 and 1000 local free backends serving
one model, tiers 1-5 in turn, priorities spread over 0-100, or all 50 with
``--same-priority``) it routes ``--calls`` requests (default 200) through
``POST /api/v1/route`` in-process (Django's test client, an API key), each
restricted (``X-Nexus-Privacy: restricted``) under a policy asking for tier 3,
after a few warm-up calls, and reports per decision what those calls took:
heap + TOAST of the decision table and of its exclusion table
(``pg_table_size`` before and after, less the free-space and visibility
maps), their indexes apart
(``pg_indexes_size``), the stored ``trace`` column (``pg_column_size``), the
JSON the API answers with and the JSON text stored. Each call runs its
on-commit work as if it had committed, so decisions are stored as deltas
against a decision template as in a served process
(``routing.services.decision_templates``); the templates' table is reported
apart (one per model and month, shared by all its decisions).

Nothing is left behind: the run is one transaction, rolled back at the end,
and the decisions go to fresh temporary copies of the two tables (``CREATE
TEMP TABLE ... (LIKE ... INCLUDING ALL)``, which shadow the real ones, and
the templates' table, for this connection), so the sizes start from empty tables and no free space left by
earlier rows is reused. On any other database it stops with an error: the
figure is PostgreSQL's (SQLite keeps no TOAST and no per-table sizes).
"""

from __future__ import annotations

import json
import statistics
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test import Client, TestCase
from django.test.utils import override_settings

from routing.adapters import config_snapshot_invalidate
from routing.models import (
    Backend,
    BackendModel,
    DecisionExclusion,
    DecisionTemplate,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
)
from routing.services.api_keys import api_key_issue
from routing.services.decision_templates import decision_templates_forget
from routing.services.routing import routing_state_forget

MODEL = "bench-storage-model"
SIZES = (5, 50, 200, 1000)
BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Summarise the attached notes. " * 20}],
    "max_tokens": 256,
}
#: What the targets are (contract, "Decision storage at scale").
TARGETS = {50: 1024, 1000: 10 * 1024}


class _Rollback(Exception):
    """Raised to roll the whole run back."""


#: ``pg_table_size`` less the free-space and visibility maps: those forks
#: appear, a fixed 8-24 KB, once a table passes four pages, whichever rows
#: made it grow (a 200-call run would count them as 100 bytes a decision).
_HEAP_AND_TOAST = (
    "pg_table_size({0}) - pg_relation_size({0}, 'fsm') - pg_relation_size({0}, 'vm')"
)


def _sizes(table: str) -> tuple[int, int]:
    """(heap + TOAST, indexes) in bytes of ``table`` and its partitions."""
    table_size = _HEAP_AND_TOAST.format("relid")
    with connection.cursor() as cursor:
        # A plain (or temporary) table has no partition tree: then itself.
        cursor.execute(
            f"SELECT coalesce(sum({table_size}), "
            f"{_HEAP_AND_TOAST.format('%(t)s::regclass')}), "
            "coalesce(sum(pg_indexes_size(relid)), pg_indexes_size(%(t)s)) "
            "FROM pg_partition_tree(%(t)s::regclass)",
            {"t": table},
        )
        table_size, index_size = cursor.fetchone()
    return int(table_size), int(index_size)


def _shadow(table: str) -> None:
    """A fresh, empty temporary copy of ``table`` that hides it on this connection."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.oid = %s::regclass",
            [table],
        )
        (schema,) = cursor.fetchone()
        cursor.execute(
            "SELECT array_to_string(reloptions, ', ') FROM pg_class "
            "WHERE oid = %s::regclass",
            [table],
        )
        (options,) = cursor.fetchone()
        cursor.execute(
            f"CREATE TEMP TABLE {quote(table)} "
            f"(LIKE {quote(schema)}.{quote(table)} INCLUDING ALL)"
            + (f" WITH ({options})" if options else "")
        )


def _drop_shadow(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE pg_temp.{connection.ops.quote_name(table)}")


def _fleet(size: int, *, same_priority: bool = False) -> list[Backend]:
    """``size`` local free backends serving ``MODEL`` (unsaved config changes
    are fine here: the run is rolled back)."""
    zone = PrivacyZone.objects.get(name="local")
    run = uuid.uuid4().hex[:4]
    backends = Backend.objects.bulk_create(
        Backend(
            name=f"bench-{run}-{i:04d}",
            kind="vllm",
            base_url=f"http://10.1.{i // 250}.{i % 250}:8000",
            privacy_zone=zone,
            capability_tier=i % 5 + 1,
            priority=50 if same_priority else (i * 37) % 101,
            health="healthy",
        )
        for i in range(size)
    )
    BackendModel.objects.bulk_create(
        BackendModel(backend=b, name=MODEL, tools=True, context_window=32768)
        for b in backends
    )
    return backends


class Command(BaseCommand):
    help = "Stored bytes per routed decision on PostgreSQL at several fleet sizes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--calls", type=int, default=200)
        parser.add_argument(
            "--same-priority",
            action="store_true",
            help="every backend at priority 50 (default: spread over 0-100)",
        )
        parser.add_argument(
            "--sizes",
            default=",".join(str(s) for s in SIZES),
            help="comma-separated fleet sizes (default 5,50,200,1000)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "bench_storage measures PostgreSQL storage (heap + TOAST from "
                f"pg_table_size); the configured database is {connection.vendor}. "
                "Point DATABASE_URL at a PostgreSQL scratch database."
            )
        calls = options["calls"]
        if calls < 1:
            raise CommandError("--calls must be at least 1")
        sizes = [int(s) for s in options["sizes"].split(",") if s.strip()]
        self.stdout.write(
            f"{calls} route calls per fleet (restricted request, tier-3 policy); "
            "bytes per decision (heap + TOAST; indexes apart)"
        )
        self.stdout.write(
            f"{'backends':>8} {'decision':>9} {'exclusions':>10} {'total':>8} "
            f"{'indexes':>8} {'trace':>6} {'API JSON':>9} {'stored JSON':>11}  target"
        )
        with override_settings(ALLOWED_HOSTS=["testserver"]):
            try:
                with transaction.atomic():
                    for size in sizes:
                        self._one(size, calls, options["same_priority"])
                    raise _Rollback
            except _Rollback:
                pass
            finally:
                config_snapshot_invalidate()
                routing_state_forget()

    def _one(self, size: int, calls: int, same_priority: bool) -> None:
        decisions = RoutingDecision._meta.db_table
        exclusions = DecisionExclusion._meta.db_table
        templates = DecisionTemplate._meta.db_table
        backends = _fleet(size, same_priority=same_priority)
        policy = TrafficPolicy.objects.create(
            name=f"bench-tier-{size}", model_pattern=MODEL, min_tier=3, order=1
        )
        _, raw = api_key_issue(name=f"bench-storage-{uuid.uuid4().hex[:8]}")
        client = Client(
            headers={"Authorization": f"Bearer {raw}", "X-Nexus-Privacy": "restricted"}
        )
        config_snapshot_invalidate()
        routing_state_forget()
        _shadow(decisions)
        _shadow(exclusions)
        _shadow(templates)
        decision_templates_forget()
        # Warm-up calls first: the tables' free-space maps (24 KB each, made
        # once a table passes four pages) are not a decision's bytes.
        warm = max(20, calls // 10)
        self._route(client, warm)
        before = (_sizes(decisions), _sizes(exclusions))
        api_json = self._route(client, calls)
        after = (_sizes(decisions), _sizes(exclusions))
        recorded = RoutingDecision.objects.count()
        if recorded != warm + calls:
            raise CommandError(
                f"{recorded} decisions recorded for {warm + calls} calls"
            )
        stored, trace = self._stored_json(decisions)
        template_count = DecisionTemplate.objects.count()
        template_bytes = _sizes(templates)[0]
        heap = (after[0][0] - before[0][0]) / calls
        child = (after[1][0] - before[1][0]) / calls
        indexes = (after[0][1] - before[0][1] + after[1][1] - before[1][1]) / calls
        target = TARGETS.get(size)
        verdict = (
            ""
            if target is None
            else f"<= {target // 1024} KB: {'met' if heap + child <= target else 'NOT met'}"
        )
        self.stdout.write(
            f"{size:>8} {heap:>9.0f} {child:>10.0f} {heap + child:>8.0f} "
            f"{indexes:>8.0f} {trace:>6.0f} {statistics.fmean(api_json):>9.0f} "
            f"{stored:>11.0f}  {verdict}"
        )
        self.stdout.write(
            f"{'':>8} + {template_count} decision template(s), {template_bytes:,} "
            f"bytes in all for the {warm + calls} decisions (heap + TOAST)"
        )
        _drop_shadow(templates)
        _drop_shadow(exclusions)
        _drop_shadow(decisions)
        policy.delete()
        BackendModel.objects.filter(backend__in=backends).delete()
        Backend.objects.filter(pk__in=[b.pk for b in backends]).delete()

    def _route(self, client: Client, calls: int) -> list[int]:
        """Route ``calls`` times; the answers' sizes in bytes. Each call's
        on-commit work runs as if it had committed (the run is one transaction):
        a decision template is taken into use as in a served process."""
        sizes: list[int] = []
        for _ in range(calls):
            with TestCase.captureOnCommitCallbacks(execute=True):
                response = client.post(
                    "/api/v1/route",
                    data=json.dumps(BODY),
                    content_type="application/json",
                )
            if response.status_code != 200:
                raise CommandError(
                    f"route answered {response.status_code}: {response.content[:300]!r}"
                )
            sizes.append(len(response.content))
        return sizes

    def _stored_json(self, table: str) -> tuple[float, float]:
        """Mean JSON text of a decision's JSON columns, as stored, and mean
        ``pg_column_size`` of its ``trace`` column (as stored: compressed or not)."""
        quote = connection.ops.quote_name
        columns = [
            f.column
            for f in RoutingDecision._meta.local_concrete_fields
            if f.get_internal_type() == "JSONField"
        ]
        total = " + ".join(f"octet_length({quote(c)}::text)" for c in columns)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT avg({total}), avg(pg_column_size({quote('trace')})) "
                f"FROM {quote(table)}"
            )
            text, trace = cursor.fetchone()
        return float(text or 0), float(trace or 0)
