"""Reservations and spend touch exactly the budgets that govern a decision."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from importlib import import_module
from typing import Any

import pytest
from django.apps import apps
from django.utils import timezone

from routing.models import Budget, BudgetAlert, LedgerEntry, UsageReport
from routing.pipeline import RoutingRequest
from routing.services.budgets import budget_reconcile_all
from routing.services.config import config_save
from routing.services.ledger import usage_record
from routing.services.routing import route_request
from tests.fleet_rows import set_budget

pytestmark = pytest.mark.django_db


def add_budget(name: str, limit: str | None, scope: dict[str, Any]) -> Budget:
    budget = Budget(
        name=name,
        monthly_limit_usd=Decimal(limit) if limit is not None else None,
        scope=scope,
    )
    config_save(instance=budget, actor="test")
    return budget


def route(model: str, client: str) -> Any:
    request = RoutingRequest(
        model=model,
        body={"model": model, "messages": [{"role": "user", "content": "x" * 400}]},
    )
    return route_request(request=request, request_id="r", client=client)


def settle(outcome: Any, cost: str, *, tokens: int) -> None:
    """Report ``outcome``'s usage: ``tokens`` in and out, costing ``cost`` USD."""
    usage_record(
        decision_id=outcome.decision_id,
        input_tokens=tokens,
        output_tokens=tokens,
        cost_usd=Decimal(cost),
        reporter=None,
    )


def ledger(budget: str, kind: str) -> list[Decimal]:
    return list(
        LedgerEntry.objects.filter(budget__name=budget, kind=kind).values_list(
            "amount_usd", flat=True
        )
    )


def test_a_route_reserves_only_on_the_limited_budgets_that_govern_it(
    fleet: Any,
) -> None:
    set_budget("100")
    add_budget("cloud", "50", {"zones": ["cloud"]})
    add_budget("local", "50", {"zones": ["local"]})
    add_budget("team-a", "50", {"clients": ["team-a-app"]})
    add_budget("tracking", None, {"zones": ["cloud"]})
    outcome = route("gpt-4o", "team-b-app")
    assert outcome.result.backend_name == "cloud-gpt"
    reserved = {
        name
        for name in ("global", "cloud", "local", "team-a", "tracking")
        if ledger(name, "reserve")
    }
    assert reserved == {"global", "cloud"}
    assert [b["name"] for b in outcome.result.annotations["budgets"]] == [
        "global",
        "cloud",
        "tracking",
    ]


def test_usage_books_spend_on_every_governing_budget_with_or_without_a_limit(
    fleet: Any,
) -> None:
    add_budget("cloud", "50", {"zones": ["cloud"]})
    add_budget("local", None, {"zones": ["local"]})
    add_budget("team-a", None, {"clients": ["team-a-app"], "models": ["gpt-*"]})
    outcome = route("gpt-4o", "team-a-app")
    assert outcome.decision_id is not None
    settle(outcome, "2", tokens=1000)
    booked = {name: ledger(name, "spend") for name in ("global", "cloud", "local")}
    assert booked == {"global": [Decimal("2")], "cloud": [Decimal("2")], "local": []}
    assert ledger("team-a", "spend") == [Decimal("2")]
    # A budget with a limit counts it at once; one without only in its ledger,
    # until the periodic reconciliation brings its total up to date.
    assert Budget.objects.get(name="cloud").spent_usd == Decimal("2")
    assert Budget.objects.get(name="cloud").reserved_usd == 0
    assert Budget.objects.get(name="global").spent_usd == 0
    budget_reconcile_all()
    spent = dict(Budget.objects.values_list("name", "spent_usd"))
    assert spent == {
        "global": Decimal("2"),  # no limit: tracking only, still counted
        "cloud": Decimal("2"),
        "local": Decimal(0),
        "team-a": Decimal("2"),
    }


def test_a_budget_created_mid_period_counts_the_governed_spend_so_far(
    fleet: Any,
) -> None:
    for model, client in (("gpt-4o", "a"), ("llama3.1:8b", "b"), ("gpt-4o", "c")):
        outcome = route(model, client)
        settle(outcome, "1.5", tokens=10)
    gpt = add_budget("gpt", "100", {"models": ["gpt-*"]})
    assert gpt.spent_usd == Decimal("3")
    assert sum(ledger("global", "spend")) == Decimal("4.5")
    gpt.scope = {"clients": ["a"]}
    config_save(instance=gpt, actor="test")
    assert Budget.objects.get(name="gpt").spent_usd == Decimal("1.5")
    assert len(ledger("gpt", "spend")) == 1


def test_the_backfill_migration_books_the_period_on_budgets_that_had_no_limit(
    fleet: Any,
) -> None:
    outcome = route("gpt-4o", "a")
    UsageReport.objects.create(
        decision_id=outcome.decision_id,
        input_tokens=1,
        output_tokens=1,
        cost_usd=Decimal("10"),
    )
    assert Budget.objects.get(name="global").spent_usd == 0  # booked nowhere yet
    migration = import_module("routing.migrations.0012_backfill_budget_spend")
    migration.backfill(apps, None)
    migration.backfill(apps, None)  # again: nothing twice
    assert Budget.objects.get(name="global").spent_usd == Decimal("10")
    assert ledger("global", "spend") == [Decimal("10")]


def test_spend_counted_by_a_recount_keeps_the_time_of_its_usage(fleet: Any) -> None:
    outcome = route("gpt-4o", "a")
    settle(outcome, "1", tokens=1)
    period_start = Budget.objects.get(name="global").period_start
    recorded = max(
        timezone.now() - timedelta(hours=30),
        datetime.combine(period_start, time.min, tzinfo=UTC),
    )
    UsageReport.objects.update(created_at=recorded)
    add_budget("later", "10", {})
    entry = LedgerEntry.objects.get(budget__name="later", kind="spend")
    assert entry.created_at == recorded  # the burn rate sees when it was spent


def test_a_reservation_or_a_settlement_that_crosses_a_threshold_logs_its_alert_at_once(
    fleet: Any,
) -> None:
    set_budget("0.02", alert_thresholds=[50, 90])
    request = RoutingRequest(
        model="gpt-4o",
        body={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "x" * 4000}],
            "max_tokens": 1000,
        },
    )
    outcome = route_request(request=request, request_id="r", client="a")
    assert outcome.result.estimated_cost_usd == pytest.approx(0.0125)  # 62.5 %
    alerts = BudgetAlert.objects.filter(budget__name="global")
    assert list(alerts.values_list("threshold_percent", "status")) == [(50, "logged")]
    settle(outcome, "0.019", tokens=1000)  # 95 %
    assert sorted(alerts.values_list("threshold_percent", flat=True)) == [50, 90]


def test_setting_a_limit_on_a_tracking_budget_counts_its_spend_first(
    fleet: Any,
) -> None:
    outcome = route("gpt-4o", "a")
    settle(outcome, "3", tokens=1)
    assert Budget.objects.get(name="global").spent_usd == 0  # not yet refreshed
    assert set_budget("5").spent_usd == Decimal("3")
