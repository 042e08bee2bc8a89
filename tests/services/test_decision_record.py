"""decision_record: the decision, its exclusions and its reservation, all or nothing.

Runs on SQLite locally and on PostgreSQL in CI, which records in one statement.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from django.db import DataError, connection
from django.utils import timezone

from routing.models import (
    Budget,
    DecisionExclusion,
    LedgerEntry,
    RoutingDecision,
)
from routing.pipeline import RoutingResult
from routing.selectors import routing_state
from routing.services.config import config_save
from routing.services.decision_sql import StateGuard
from routing.services.decision_templates import decision_view
from routing.services.decisions import StaleRoutingState, decision_record
from routing.services.ledger import Reservation, ReservationRefused
from tests.fleet_rows import set_budget
from tests.pipeline.fleet import backend, config, offer, request, route

pytestmark = pytest.mark.django_db


def routed() -> RoutingResult:
    """gpt-4o routed to cloud-gpt; privacy excluded local-gpu, capability a and b."""
    gpt = offer("gpt-4o", input_cost_per_1k=0.0025, output_cost_per_1k=0.01)
    fleet = config(
        backend("cloud-gpt", zone="cloud", capability_tier=5, models=(gpt,)),
        backend("local-gpu", zone="local", capability_tier=5, models=(gpt,)),
        backend("a", zone="cloud", capability_tier=1, models=(gpt,)),
        backend("b", zone="cloud", capability_tier=1, models=(gpt,)),
    )
    return route(fleet, request("gpt-4o", privacy="zone:cloud", min_tier=3))


ROUTED = routed()


def record(
    reservation: Reservation | None = None, guard: StateGuard | None = None
) -> uuid.UUID:
    decision_id = uuid.uuid4()
    decision_record(
        decision_id=decision_id,
        result=ROUTED,
        request_id="req-1",
        client="svc",
        config_version=7,
        created_at=timezone.now(),
        reservation=reservation,
        guard=guard,
    )
    return decision_id


def guard_on_current_state(headroom: str, **changes: Any) -> StateGuard:
    state = routing_state()
    fields: dict[str, Any] = {
        "config_version": state.version,
        "state_version": state.state_version,
        "budgets": tuple(state.budgets),
        "headroom": Decimal(headroom),
    }
    return StateGuard(**{**fields, **changes})


def second_budget(limit: str, action: str = "block_cloud") -> Budget:
    budget = Budget(name="team-a", monthly_limit_usd=Decimal(limit))
    budget.hard_limit_action = action
    config_save(instance=budget, actor="test")
    return budget


def test_a_decision_is_stored_with_one_exclusion_row_per_excluding_reconciler() -> None:
    decision_id = record()
    stored = RoutingDecision.objects.get(pk=decision_id)
    assert (stored.outcome, stored.backend_name, stored.config_version) == (
        "route",
        "cloud-gpt",
        7,
    )
    assert ROUTED.estimated_cost_usd
    assert stored.estimated_cost_usd == Decimal(str(ROUTED.estimated_cost_usd))
    view = decision_view(stored)
    assert view["details"]["models_tried"] == ["gpt-4o"]
    assert view["trace"] == ROUTED.trace_json()
    counts = dict(
        DecisionExclusion.objects.filter(decision_id=decision_id).values_list(
            "reconciler", "excluded_count"
        )
    )
    assert counts == {"privacy": 1, "capability": 2}


def test_a_reservation_that_fits_is_held_on_every_budget_with_the_decision() -> None:
    budgets = [set_budget("10"), second_budget("5", action="warn")]
    decision_id = record(Reservation(amount=Decimal("0.5"), budgets=budgets))
    assert RoutingDecision.objects.filter(pk=decision_id).exists()
    for budget in budgets:
        budget.refresh_from_db()
        assert budget.reserved_usd == Decimal("0.5")
        entry = LedgerEntry.objects.get(budget=budget, decision_id=decision_id)
        assert (entry.kind, entry.amount_usd) == ("reserve", Decimal("0.5"))
        assert entry.period_start == budget.period_start


def test_a_refused_reservation_writes_nothing_and_names_the_budget() -> None:
    budget = set_budget("1", hard_limit_action="block_cloud")
    Budget.objects.filter(pk=budget.pk).update(spent_usd=Decimal("0.9"))
    budget.refresh_from_db()
    with pytest.raises(ReservationRefused) as refused:
        record(Reservation(amount=Decimal("0.2"), budgets=[budget]))
    assert refused.value.budget == "global"
    budget.refresh_from_db()
    assert budget.reserved_usd == 0
    assert not RoutingDecision.objects.exists()
    assert not DecisionExclusion.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_one_budget_refusing_undoes_the_reservation_on_the_others() -> None:
    roomy = set_budget("100")
    full = second_budget("0.1")
    with pytest.raises(ReservationRefused) as refused:
        record(Reservation(amount=Decimal("0.2"), budgets=[roomy, full]))
    assert refused.value.budget == "team-a"
    for budget in (roomy, full):
        budget.refresh_from_db()
        assert budget.reserved_usd == 0
    assert not RoutingDecision.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_a_warn_budget_takes_a_reservation_past_its_limit() -> None:
    budget = set_budget("0.1", hard_limit_action="warn")
    decision_id = record(Reservation(amount=Decimal("0.2"), budgets=[budget]))
    budget.refresh_from_db()
    assert budget.reserved_usd == Decimal("0.2")
    assert RoutingDecision.objects.filter(pk=decision_id).exists()


def test_an_over_long_field_is_refused_not_truncated(postgres: None) -> None:
    with pytest.raises(DataError, match="too long"):
        decision_record(
            decision_id=uuid.uuid4(),
            result=ROUTED,
            request_id="r",
            client="c" * 161,
            config_version=1,
            created_at=timezone.now(),
        )


def test_repeated_writes_run_as_a_statement_prepared_on_postgresql(
    postgres: None,
) -> None:
    for _ in range(6):
        record()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('INSERT INTO "routing_routingdecision"' in sql for sql in prepared)


def test_a_guarded_write_happens_while_the_remembered_state_holds(
    postgres: None,
) -> None:
    budget = set_budget("10", soft_limit_percent=50)
    Budget.objects.filter(pk=budget.pk).update(spent_usd=Decimal("4"))
    decision_id = record(
        Reservation(amount=Decimal("0.5"), budgets=[budget]),
        guard_on_current_state("0.99"),
    )
    assert RoutingDecision.objects.filter(pk=decision_id).exists()
    assert Budget.objects.get(pk=budget.pk).reserved_usd == Decimal("0.5")


@pytest.mark.parametrize(
    "stale",
    ["config changed", "probed state changed", "headroom reaches the soft limit"],
)
def test_a_guarded_write_on_a_state_that_no_longer_holds_writes_nothing(
    postgres: None, stale: str
) -> None:
    budget = set_budget("10", soft_limit_percent=50)
    Budget.objects.filter(pk=budget.pk).update(spent_usd=Decimal("4"))
    state = routing_state()
    guard = {
        "config changed": guard_on_current_state("0", config_version=state.version - 1),
        "probed state changed": guard_on_current_state(
            "0", state_version=state.state_version + 1
        ),
        "headroom reaches the soft limit": guard_on_current_state("1"),
    }[stale]
    with pytest.raises(StaleRoutingState):
        record(Reservation(amount=Decimal("0.5"), budgets=[budget]), guard)
    assert Budget.objects.get(pk=budget.pk).reserved_usd == 0
    assert not RoutingDecision.objects.exists()
    assert not LedgerEntry.objects.exists()
    assert not DecisionExclusion.objects.exists()


def test_a_guard_names_every_enabled_budget_or_writes_nothing(postgres: None) -> None:
    set_budget("10")
    guard = guard_on_current_state("0")
    second_budget("20")
    with pytest.raises(StaleRoutingState):
        record(guard=replace(guard, config_version=routing_state().version))
    assert not RoutingDecision.objects.exists()


def test_a_guard_that_remembers_a_budget_since_disabled_writes_nothing(
    postgres: None,
) -> None:
    set_budget("10")
    guard = guard_on_current_state("0")
    Budget.objects.filter(name="global").update(monthly_limit_usd=None)
    with pytest.raises(StaleRoutingState):
        record(guard=guard)  # no reservation: only the guard can refuse it
    assert not RoutingDecision.objects.exists()


def test_a_guarded_reservation_one_budget_refuses_is_undone_on_the_others(
    postgres: None,
) -> None:
    roomy = set_budget("100")
    full = second_budget("0.1")
    guard = guard_on_current_state("0")
    with pytest.raises(ReservationRefused) as refused:
        record(Reservation(amount=Decimal("0.2"), budgets=[roomy, full]), guard)
    assert refused.value.budget == "team-a"
    for budget in (roomy, full):
        assert Budget.objects.get(pk=budget.pk).reserved_usd == 0
    assert not RoutingDecision.objects.exists()
    assert not LedgerEntry.objects.exists()
