"""PostgreSQL: migration 0017 moves existing decisions into partitions, losing none."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from routing.models import DecisionExclusion, RoutingDecision
from tests.factories import RoutingDecisionFactory

pytestmark = pytest.mark.usefixtures("postgres")

BEFORE = "0016_decision_sample"
PARTITIONED = "0017_partition"


def migrate_to(name: str) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("routing", name)])


def where(table: str, column: str, value: object) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT tableoid::regclass::text FROM "{table}" WHERE "{column}" = %s',
            [value],
        )
        return str(cursor.fetchone()[0])


def key_columns(table: str, name: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_constraint c "
            "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
            "WHERE c.conrelid = %s::regclass AND c.conname = %s ORDER BY k.ord",
            [table, name],
        )
        return [row[0] for row in cursor.fetchall()]


def insert_plain(created_at: object) -> uuid.UUID:
    """A decision and one exclusion row, written while the tables are plain."""
    decision_id = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO routing_routingdecision (id, request_id, created_at, outcome, "
            "error_type, requested_model, model, backend_name, reason, fallback_used, "
            "pipeline_duration_us, client, config_version, requirements, constraints, "
            "annotations, trace, warnings, details, attempts) VALUES (%s, 'r', %s, "
            "'route', '', 'm', 'm', 'b', '', false, 0, '', 1, '{}', '{}', '{}', '[]', "
            "'[]', '{}', '[]')",
            [decision_id, created_at],
        )
        cursor.execute(
            "INSERT INTO routing_decisionexclusion (decision_id, reconciler, "
            "excluded_count, created_at) VALUES (%s, 'privacy', 1, %s)",
            [decision_id, created_at],
        )
    return decision_id


def test_existing_rows_are_copied_into_the_partitions_of_their_period() -> None:
    migrate_to(BEFORE)
    try:
        now = timezone.now()
        recent = insert_plain(now)
        ancient = insert_plain(now - timedelta(days=3650))
    finally:
        migrate_to(PARTITIONED)
    month = f"p{now:%Y%m}01"
    assert where("routing_routingdecision", "id", recent).endswith(month)
    assert where("routing_decisionexclusion", "decision_id", recent).endswith(month)
    # Older than retention: no partition of its own, kept in the default one.
    assert where("routing_routingdecision", "id", ancient).endswith("_default")
    assert RoutingDecision.objects.get(pk=recent).exclusions.count() == 1
    assert key_columns("routing_routingdecision", "routing_routingdecision_pkey") == [
        "id",
        "created_at",
    ]
    assert key_columns("routing_decisionexclusion", "exclusion_unique") == [
        "decision_id",
        "reconciler",
        "created_at",
    ]
    # The exclusion ids carry on after the copied ones.
    copied = max(DecisionExclusion.objects.values_list("id", flat=True))
    later = RoutingDecisionFactory()
    added = DecisionExclusion.objects.create(
        decision=later,
        reconciler="budget",
        excluded_count=1,
        created_at=later.created_at,
    )
    assert added.pk > copied


def test_going_back_before_0017_leaves_plain_tables_with_every_row() -> None:
    kept = RoutingDecisionFactory()
    DecisionExclusion.objects.create(
        decision=kept,
        reconciler="privacy",
        excluded_count=1,
        created_at=kept.created_at,
    )
    migrate_to(BEFORE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relkind FROM pg_class WHERE oid = 'routing_routingdecision'::regclass"
            )
            assert cursor.fetchone()[0] == "r"
            cursor.execute(
                "SELECT count(*) FROM routing_decisionexclusion WHERE decision_id = %s",
                [kept.pk],
            )
            assert cursor.fetchone()[0] == 1
        assert key_columns(
            "routing_routingdecision", "routing_routingdecision_pkey"
        ) == ["id"]
    finally:
        migrate_to(PARTITIONED)
