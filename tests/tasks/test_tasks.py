"""Tasks are thin: ids in, one service call, retries on transient database errors."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import OperationalError
from django.utils import timezone

from routing import tasks
from routing.models import Backend, Budget, RoutingDecision
from routing.pipeline.periods import budget_period
from routing.services import budgets
from tests.factories import BackendFactory, RoutingDecisionFactory, global_budget
from tests.http_servers import FakeBackend

pytestmark = pytest.mark.django_db


def test_the_budget_task_corrects_drift_and_reports_it() -> None:
    start, end = budget_period(timezone.now().date(), 1)
    Budget.objects.filter(name="global").update(
        monthly_limit_usd=Decimal(100),
        spent_usd=Decimal(5),
        period_start=start,
        period_end=end,
    )
    [result] = tasks.budget_reconcile_all()
    assert result["budget_id"] == global_budget().pk
    assert Decimal(result["spent_drift_usd"]) == 5
    assert global_budget().spent_usd == 0


def test_a_tracking_only_budget_is_brought_up_to_date_without_a_drift_report() -> None:
    start, end = budget_period(timezone.now().date(), 1)
    Budget.objects.filter(name="global").update(
        spent_usd=Decimal(5), period_start=start, period_end=end
    )  # no limit: settlements leave its total to this task
    [result] = tasks.budget_reconcile_all()
    assert Decimal(result["spent_drift_usd"]) == 0
    assert global_budget().spent_usd == 0


def test_the_single_budget_task_takes_an_id() -> None:
    budget = global_budget()
    Budget.objects.filter(pk=budget.pk).update(reserved_usd=Decimal(2))
    assert tasks.budget_reconcile(budget.pk)["reserved_drift_usd"] == "2.000000"


def test_the_probe_tasks_record_health() -> None:
    fake = FakeBackend().start()
    try:
        backend = BackendFactory(kind="ollama", base_url=fake.url)
        assert tasks.backend_probe(backend.pk) == "healthy"
        assert tasks.backend_probe_all() == {backend.name: "healthy"}
    finally:
        fake.stop()
    assert Backend.objects.get(pk=backend.pk).health == "healthy"


def test_probing_a_backend_that_no_longer_exists_does_nothing() -> None:
    assert tasks.backend_probe(987654) is None


def test_the_retention_task_deletes_old_decisions(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NEXUS_DECISION_RETENTION_DAYS = 7
    # Exact: on PostgreSQL also the rows of the partition straddling the cutoff.
    settings.NEXUS_DECISION_RETENTION_EXACT = True
    RoutingDecisionFactory(created_at=timezone.now() - timedelta(days=8))
    assert tasks.decision_prune_expired() == 1
    assert not RoutingDecision.objects.exists()


def test_the_partition_task_keeps_partitions_ahead_on_postgresql_and_is_a_no_op_on_sqlite(
    settings,
) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection

    from routing.services.partitions import (
        DECISIONS,
        decision_partitions,
        period_next,
        period_start,
    )

    settings.NEXUS_DECISION_PARTITIONS_AHEAD = 4
    partitioned = connection.vendor == "postgresql"
    before = {p.name for p in decision_partitions()} if partitioned else set()
    result = tasks.decision_partitions_maintain()
    if not partitioned:
        assert result == {"partitioned": False, "created": [], "expired": []}
        return
    assert result["partitioned"] is True
    start = period_start("month", timezone.now())
    wanted = set()
    for _ in range(5):  # this month and four ahead
        wanted.add(f"{DECISIONS}_p{start:%Y%m%d}")
        start = period_next("month", start)
    # The database began with this month's partition and the next two's.
    assert len(wanted - before) >= 2
    assert wanted - before == {
        name for name in result["created"] if name.startswith(DECISIONS)
    }
    assert wanted <= {p.name for p in decision_partitions()}
    assert tasks.decision_partitions_maintain()["created"] == []


def test_a_transient_database_error_is_retried(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def flaky(**kwargs: object) -> list[budgets.BudgetReconcileResult]:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return []

    monkeypatch.setattr(budgets, "budget_reconcile_all", flaky)
    outcome = tasks.budget_reconcile_all.apply()
    assert outcome.successful()
    assert len(calls) == 3


def test_every_periodic_task_is_registered_and_expires(settings) -> None:  # type: ignore[no-untyped-def]
    from nexus_site.celery import app

    schedule = settings.CELERY_BEAT_SCHEDULE
    assert set(schedule) == {
        "budget-reconcile-all",
        "budget-alerts-check",
        "backend-probe-all",
        "decision-prune-expired",
        "decision-partitions-maintain",
        "spend-rollup",
    }
    for entry in schedule.values():
        assert entry["task"] in app.tasks
        assert entry["options"]["expires"] > 0
    assert tasks.backend_probe_all.soft_time_limit < tasks.backend_probe_all.time_limit
