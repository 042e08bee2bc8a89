"""``bench_history`` fills the partitions with copies of real decisions (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from routing.models import DecisionExclusion, RoutingDecision
from routing.services.partitions import DECISIONS, decision_partitions
from tests.factories import RoutingDecisionFactory

pytestmark = pytest.mark.django_db


def template() -> RoutingDecision:
    decision = RoutingDecisionFactory(outcome="reject", trace=[{"reconciler": "x"}])
    DecisionExclusion.objects.create(
        decision=decision,
        reconciler="privacy",
        excluded_count=3,
        created_at=decision.created_at,
    )
    return decision


def test_it_writes_copies_spread_over_the_months_into_their_partitions(
    postgres: None,
) -> None:
    original = template()
    call_command(
        "bench_history", "--rows=300", "--months=2", "--end=2031-03-01", "--chunk=120"
    )
    copies = RoutingDecision.objects.filter(request_id__startswith="bench-")
    assert copies.count() == 300
    assert set(copies.values_list("outcome", flat=True)) == {"reject"}
    assert copies.filter(trace=original.trace).count() == 300
    assert (
        DecisionExclusion.objects.filter(
            decision_id__in=copies.values("id"), reconciler="privacy", excluded_count=3
        ).count()
        == 300
    )
    first, last = (
        copies.order_by("created_at").first(),
        copies.order_by("created_at").last(),
    )
    assert first is not None and last is not None
    assert first.created_at >= datetime(2031, 1, 1, tzinfo=UTC)
    assert last.created_at < datetime(2031, 3, 1, tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT DISTINCT tableoid::regclass::text FROM "{DECISIONS}" '
            "WHERE request_id LIKE 'bench-%%' ORDER BY 1"
        )
        assert [row[0] for row in cursor.fetchall()] == [
            f"{DECISIONS}_p20310101",
            f"{DECISIONS}_p20310201",
        ]


def test_explain_reports_each_page_query_with_its_plan(postgres: None, capsys) -> None:  # type: ignore[no-untyped-def]
    template()
    call_command("bench_history", "--rows=200", "--months=1")
    capsys.readouterr()
    call_command("bench_history", "--explain")
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("  ")[0] for line in lines]
    assert names[0] == "explorer newest page"
    assert "explorer excluded_by=privacy" in names
    assert any(name.startswith("explorer cursor") for name in names)
    assert "api until" in names
    assert names[-1] == "decision by id"
    assert all(" ms  " in line and "Scan" in line for line in lines)


def test_drop_oldest_expires_the_oldest_partition(postgres: None, capsys) -> None:  # type: ignore[no-untyped-def]
    template()
    call_command("bench_history", "--rows=50", "--months=1", "--end=2020-02-01")
    assert decision_partitions()[0].name == f"{DECISIONS}_p20200101"
    call_command("bench_history", "--drop-oldest")
    assert f"Expired {DECISIONS}_p20200101 (50 decisions)" in capsys.readouterr().out
    assert decision_partitions()[0].name != f"{DECISIONS}_p20200101"
    assert not RoutingDecision.objects.filter(request_id__startswith="bench-").exists()


def test_without_partitions_it_refuses_with_a_reason() -> None:
    if connection.vendor == "postgresql":
        RoutingDecision.objects.all().delete()  # nothing to copy
        message = "no decision to copy"
    else:
        message = "needs PostgreSQL"
    with pytest.raises(CommandError, match=message):
        call_command("bench_history", "--rows=10", "--months=1")
