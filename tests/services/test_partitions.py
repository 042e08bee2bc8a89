"""PostgreSQL: decision partitions are created ahead, expire whole, and lose no row."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import OperationalError, connection

from routing.models import DecisionExclusion, RoutingDecision
from routing.services.partitions import (
    DECISIONS,
    EXCLUSIONS,
    decision_partitions,
    decision_partitions_detach,
    decision_partitions_ensure,
    decision_partitions_expire,
)
from routing.services.retention import decision_prune_expired
from tests.factories import RoutingDecisionFactory

pytestmark = pytest.mark.usefixtures("postgres")

# Years ahead of the test database's own partitions (made for today at migrate).
MARCH_15 = datetime(2031, 3, 15, 12, tzinfo=UTC)


def at(month: int, day: int, year: int = 2031) -> datetime:
    return datetime(year, month, day, 9, 30, tzinfo=UTC)


def decision_at(created_at: datetime, reconciler: str = "privacy") -> RoutingDecision:
    decision = RoutingDecisionFactory(created_at=created_at)
    DecisionExclusion.objects.create(
        decision=decision,
        reconciler=reconciler,
        excluded_count=2,
        created_at=created_at,
    )
    return decision


def partition_of(table: str, **where: object) -> str:
    """The partition (table name) holding the row of ``table`` matching ``where``."""
    column, value = next(iter(where.items()))
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT tableoid::regclass::text FROM "{table}" WHERE "{column}" = %s',
            [value],
        )
        return str(cursor.fetchone()[0])


def of_2031(names: list[str] | tuple[str, ...]) -> list[str]:
    """The names of partitions of 2031 (not those the test database began with)."""
    return [name for name in names if "_p2031" in name]


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cursor.fetchone()[0])


def test_partitions_are_created_for_this_period_and_the_next_two_of_both_tables() -> (
    None
):
    ensured = decision_partitions_ensure(now=MARCH_15, ahead=2, period="month")
    assert ensured.created == [
        f"{table}_p2031{month}01"
        for month in ("03", "04", "05")
        for table in (DECISIONS, EXCLUSIONS)
    ]
    bounds = {p.name: (p.start, p.end) for p in decision_partitions()}
    assert bounds[f"{DECISIONS}_p20310401"] == (
        datetime(2031, 4, 1, tzinfo=UTC),
        datetime(2031, 5, 1, tzinfo=UTC),
    )
    assert (
        decision_partitions_ensure(now=MARCH_15, ahead=2, period="month").created == []
    )


def test_weekly_partitions_start_on_monday() -> None:
    ensured = decision_partitions_ensure(now=MARCH_15, ahead=1, period="week")
    # 15 March 2031 is a Saturday.
    assert ensured.created == [
        f"{DECISIONS}_p20310310",
        f"{EXCLUSIONS}_p20310310",
        f"{DECISIONS}_p20310317",
        f"{EXCLUSIONS}_p20310317",
    ]


def test_decisions_far_in_the_past_or_future_land_in_the_default_partition() -> None:
    old = decision_at(datetime(1990, 1, 1, tzinfo=UTC))
    future = decision_at(datetime(2200, 1, 1, tzinfo=UTC))
    for decision in (old, future):
        assert partition_of(DECISIONS, id=decision.pk) == f"{DECISIONS}_default"
        assert (
            partition_of(EXCLUSIONS, decision_id=decision.pk) == f"{EXCLUSIONS}_default"
        )
    assert set(RoutingDecision.objects.filter(pk__in=[old.pk, future.pk])) == {
        old,
        future,
    }
    ensured = decision_partitions_ensure(now=MARCH_15)
    assert ensured.default_rows == 2  # reported, kept where they are
    assert RoutingDecision.objects.filter(pk=future.pk).exists()


def test_a_new_partition_takes_its_rows_out_of_the_default_partition() -> None:
    stray = decision_at(at(4, 10))
    assert partition_of(DECISIONS, id=stray.pk) == f"{DECISIONS}_default"
    ensured = decision_partitions_ensure(now=MARCH_15, ahead=2, period="month")
    assert ensured.moved_rows == 2  # the decision and its exclusion row
    assert ensured.default_rows == 0
    assert partition_of(DECISIONS, id=stray.pk) == f"{DECISIONS}_p20310401"
    assert partition_of(EXCLUSIONS, decision_id=stray.pk) == f"{EXCLUSIONS}_p20310401"
    moved = RoutingDecision.objects.get(pk=stray.pk)
    assert (moved.created_at, moved.request_id) == (stray.created_at, stray.request_id)
    assert list(moved.exclusions.values_list("reconciler", "excluded_count")) == [
        ("privacy", 2)
    ]


def test_a_period_within_retention_with_rows_in_the_default_partition_gets_one() -> (
    None
):
    stray = decision_at(at(1, 20))
    ensured = decision_partitions_ensure(
        now=MARCH_15, ahead=0, period="month", retention_days=90
    )
    assert ensured.created == [
        f"{DECISIONS}_p20310101",
        f"{EXCLUSIONS}_p20310101",
        f"{DECISIONS}_p20310301",
        f"{EXCLUSIONS}_p20310301",
    ]
    assert partition_of(DECISIONS, id=stray.pk) == f"{DECISIONS}_p20310101"


def test_an_expired_partition_is_dropped_with_its_exclusion_rows(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NEXUS_DECISION_RETENTION_EXACT = True
    decision_partitions_ensure(now=at(1, 5), ahead=2, period="month")
    january = decision_at(at(1, 10))
    early_february = decision_at(at(2, 2))
    late_february = decision_at(at(2, 20))
    # 30 days before 10 March: the 8th of February.
    result = decision_prune_expired(retention_days=30, now=at(3, 10))
    assert of_2031(result.partitions_expired) == [
        f"{DECISIONS}_p20310101",
        f"{EXCLUSIONS}_p20310101",
    ]
    assert not table_exists(f"{DECISIONS}_p20310101")
    assert not table_exists(f"{EXCLUSIONS}_p20310101")
    # The straddling February partition: its older row deleted in a batch.
    assert result.deleted == 1
    kept = RoutingDecision.objects.filter(
        pk__in=[january.pk, early_february.pk, late_february.pk]
    )
    assert list(kept) == [late_february]
    assert list(
        DecisionExclusion.objects.filter(
            decision_id__in=[january.pk, early_february.pk, late_february.pk]
        ).values_list("decision_id", flat=True)
    ) == [late_february.pk]


def test_without_exact_retention_the_straddling_partition_waits_to_expire_whole(
    settings,
) -> None:  # type: ignore[no-untyped-def]
    settings.NEXUS_DECISION_RETENTION_EXACT = False
    decision_partitions_ensure(now=at(1, 5), ahead=2, period="month")
    early_february = decision_at(at(2, 2))
    result = decision_prune_expired(retention_days=30, now=at(3, 10))
    assert result.deleted == 0
    assert RoutingDecision.objects.filter(pk=early_february.pk).exists()
    later = decision_prune_expired(retention_days=30, now=at(4, 1))
    assert of_2031(later.partitions_expired) == [
        f"{DECISIONS}_p20310201",
        f"{EXCLUSIONS}_p20310201",
    ]
    assert not RoutingDecision.objects.filter(pk=early_february.pk).exists()


def test_old_rows_in_the_default_partition_are_still_deleted_in_batches(
    settings,
) -> None:  # type: ignore[no-untyped-def]
    settings.NEXUS_DECISION_RETENTION_EXACT = False
    decision_partitions_ensure(now=at(1, 5), ahead=2, period="month")
    old = decision_at(datetime(2030, 6, 1, tzinfo=UTC))
    result = decision_prune_expired(retention_days=30, now=at(3, 10))
    assert result.deleted == 1
    assert not RoutingDecision.objects.filter(pk=old.pk).exists()
    assert not DecisionExclusion.objects.filter(decision_id=old.pk).exists()


def test_a_detached_partition_keeps_its_rows_in_a_table_of_its_own() -> None:
    decision_partitions_ensure(now=at(1, 5), ahead=0, period="month")
    january = decision_at(at(1, 10))
    expired = decision_partitions_expire(cutoff=at(2, 1), detach=True)
    assert expired.detached
    assert of_2031(expired.expired) == [
        f"{DECISIONS}_p20310101",
        f"{EXCLUSIONS}_p20310101",
    ]
    assert not RoutingDecision.objects.filter(pk=january.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT id FROM "{DECISIONS}_p20310101"')
        assert cursor.fetchall() == [(january.pk,)]
        cursor.execute(f'SELECT decision_id FROM "{EXCLUSIONS}_p20310101"')
        assert cursor.fetchall() == [(january.pk,)]


def test_nothing_expires_before_its_whole_period_is_past_the_cutoff() -> None:
    decision_partitions_ensure(now=at(1, 5), ahead=0, period="month")
    assert of_2031(decision_partitions_expire(cutoff=at(1, 31)).expired) == []
    assert table_exists(f"{DECISIONS}_p20310101")


def test_a_partition_detached_to_be_dropped_is_dropped_by_the_next_run() -> None:
    decision_partitions_ensure(now=at(1, 5), ahead=0, period="month")
    decision_at(at(1, 10))
    # A run stopped after its first step: detached, renamed, not yet dropped.
    decision_partitions_detach(cutoff=at(2, 1), keep=False)
    assert table_exists(f"{DECISIONS}_p20310101_expired")
    assert not table_exists(f"{DECISIONS}_p20310101")
    decision_partitions_expire(cutoff=at(2, 1), detach=False)
    assert not table_exists(f"{DECISIONS}_p20310101_expired")
    assert not table_exists(f"{EXCLUSIONS}_p20310101_expired")


def test_a_long_query_holding_the_table_makes_it_give_up_within_seconds() -> None:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    other = psycopg.connect(**params, autocommit=False)
    try:
        # An explorer query still reading: ACCESS SHARE until it ends.
        other.execute(f'LOCK TABLE "{DECISIONS}" IN ACCESS SHARE MODE')
        started = time.monotonic()
        with pytest.raises(OperationalError, match="lock timeout"):
            decision_partitions_ensure(now=MARCH_15, ahead=0, period="month")
        assert 2.5 < time.monotonic() - started < 5
    finally:
        other.rollback()
        other.close()
    # Once the query has ended, the next run does it.
    assert decision_partitions_ensure(now=MARCH_15, ahead=0, period="month").created


def test_retention_analyzes_the_partitioned_tables_which_autovacuum_never_does() -> (
    None
):
    def parent_statistics() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stats WHERE tablename = %s AND inherited",
                [DECISIONS],
            )
            return int(cursor.fetchone()[0])

    for day in range(1, 6):
        decision_at(at(1, day))
    assert parent_statistics() == 0  # analyzed empty by the migration
    assert decision_prune_expired(retention_days=30, now=at(1, 10)).analyzed
    assert parent_statistics() > 0
