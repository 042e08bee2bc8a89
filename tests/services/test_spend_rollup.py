"""spend_rollup: each usage report lands in the daily rollup exactly once, also with
two workers at once on PostgreSQL (real threads, real row locks)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from routing.models import RoutingDecision, SpendDaily, UsageReport
from routing.services.spend_rollup import spend_rollup, spend_rollup_batch
from routing.tasks import spend_rollup_task
from tests.factories import usage_recorded

DAY0 = datetime(2026, 11, 10, tzinfo=UTC)


def many_usages(n: int, *, first_day: datetime = DAY0) -> None:
    """``n`` decisions with usage over three days, five clients and four models."""
    decisions = []
    reports = []
    for i in range(n):
        at = first_day + timedelta(minutes=i * 7 % (3 * 24 * 60))
        decision = RoutingDecision(
            id=uuid.uuid4(),
            request_id=f"r{i}",
            created_at=at,
            outcome="route",
            requested_model=f"m{i % 4}",
            model=f"m{i % 4}",
            backend_name="local-gpu" if i % 2 else "cloud-gpt",
            client=f"c{i % 5}",
            estimated_cost_usd=Decimal("0.002"),
        )
        decisions.append(decision)
        reports.append(
            UsageReport(
                decision_id=decision.id,
                input_tokens=i,
                output_tokens=1,
                cost_usd=Decimal(f"0.{i % 1000:03d}001"),
            )
        )
    RoutingDecision.objects.bulk_create(decisions, batch_size=1000)
    UsageReport.objects.bulk_create(reports, batch_size=1000)
    with connection.cursor() as cursor:  # recorded with their decisions, not now
        cursor.execute(
            "UPDATE routing_usagereport SET created_at = d.created_at "
            "FROM routing_routingdecision d WHERE d.id = routing_usagereport.decision_id"
        )


def assert_rollup_matches_usage() -> None:
    usage = UsageReport.objects.aggregate(
        cost=Sum("cost_usd"), tokens=Sum("input_tokens")
    )
    rollup = SpendDaily.objects.aggregate(
        cost=Sum("cost_usd"),
        requests=Sum("requests"),
        tokens=Sum("input_tokens"),
        estimated=Sum("estimated_cost_usd"),
    )
    count = UsageReport.objects.count()
    assert rollup == {
        "cost": usage["cost"],
        "requests": count,
        "tokens": usage["tokens"],
        "estimated": Decimal("0.002") * count,
    }
    assert not UsageReport.objects.filter(rolled_up=False).exists()


def in_threads(*work: Callable[[], Any]) -> list[Any]:
    """Run each callable in its own thread (own connection); their results."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = work[index]()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a rollup hung"
    assert errors == []
    return results


@pytest.mark.django_db
def test_the_task_rolls_up_what_is_new_and_then_nothing(fleet: Any) -> None:
    usage_recorded(at=DAY0, cost="0.5")
    usage_recorded(at=DAY0 + timedelta(days=1), cost="0.25")
    assert spend_rollup_task() == 2
    assert spend_rollup_task() == 0
    assert SpendDaily.objects.aggregate(total=Sum("cost_usd"))["total"] == Decimal(
        "0.75"
    )


@pytest.mark.django_db
def test_a_time_budget_stops_between_batches_and_the_next_run_carries_on(
    fleet: Any,
) -> None:
    many_usages(30)
    first = spend_rollup(batch_size=10, time_budget_s=0)
    assert (first.rolled_up, first.finished) == (10, False)
    rest = spend_rollup(batch_size=10)
    assert (rest.rolled_up, rest.finished) == (20, True)
    assert_rollup_matches_usage()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_racing_never_count_a_report_twice(postgres: None) -> None:
    many_usages(4000)
    barrier = threading.Barrier(2)

    def worker() -> int:
        barrier.wait(timeout=10)
        return spend_rollup(batch_size=150).rolled_up

    counts = in_threads(worker, worker)
    assert sum(counts) == 4000
    assert all(counts), counts  # both worked: the claims interleaved
    assert_rollup_matches_usage()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_skips_the_reports_another_one_holds(postgres: None) -> None:
    """Workers wait for each other only on a rollup row both add to (upserts
    in one order: they queue, never deadlock); here the held reports are of
    other days, so the second worker finishes while the first holds its claim."""
    many_usages(200, first_day=DAY0 - timedelta(days=10))
    many_usages(300)
    claimed = threading.Event()
    release = threading.Event()

    def holder() -> int:
        with transaction.atomic():
            count = spend_rollup_batch(batch_size=200)
            claimed.set()
            assert release.wait(timeout=30)
        return count

    def other() -> tuple[int, bool]:
        assert claimed.wait(timeout=30)
        try:
            return spend_rollup(batch_size=50).rolled_up, release.is_set()
        finally:
            release.set()

    held, (rest, released_first) = in_threads(holder, other)
    assert (held, rest, released_first) == (200, 300, False)
    assert_rollup_matches_usage()
