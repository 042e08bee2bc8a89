"""route_request on PostgreSQL: routing on the state read last, guarded at write.

Each test changes what a decision depends on between two calls, the way
another process would, and checks the second call decides on the new state.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.adapters import shared_pipeline_reset
from routing.models import Backend, Budget, LedgerEntry, RoutingDecision
from routing.pipeline import RoutingRequest
from routing.pipeline.types import Outcome
from routing.services.config import config_save, config_version_current
from routing.services.routing import RouteOutcome, route_request
from routing.shared_state import SqliteState
from tests.fleet_rows import make_fleet, set_budget

pytestmark = pytest.mark.usefixtures("postgres")


def route(model: str, **body: object) -> RouteOutcome:
    messages = [{"role": "user", "content": "Hi"}]
    return route_request(
        request=RoutingRequest(
            model=model, body={"model": model, "messages": messages, **body}
        ),
        request_id="req",
        client="svc",
    )


@pytest.fixture
def fleet_with_budget() -> None:
    make_fleet()
    set_budget("10", soft_limit_percent=50)


@pytest.fixture
def round_robin(settings: Any) -> Iterator[None]:
    """The app's pipeline built for ``round_robin`` (and rebuilt after)."""
    settings.NEXUS_SELECTION_STRATEGY = "round_robin"
    shared_pipeline_reset()
    yield
    shared_pipeline_reset()


# Outside a test transaction, as served; the zones come from a data migration.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    ("strategy", "statements"),
    [("smart", 1), ("priority", 1), ("round_robin", 2)],
)
def test_a_call_after_the_first_is_recorded_in_one_statement_unless_round_robin(
    fleet_with_budget: None, settings: Any, strategy: str, statements: int
) -> None:
    # Round robin always reads first: a call routed twice would turn it twice.
    settings.NEXUS_SELECTION_STRATEGY = strategy
    route("gpt-4o")
    with CaptureQueriesContext(connection) as queries:
        second = route("gpt-4o")
    assert len(queries) == statements
    stored = RoutingDecision.objects.get(pk=second.decision_id)
    assert stored.backend_name == "cloud-gpt"
    assert LedgerEntry.objects.filter(decision_id=second.decision_id).count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_round_robin_takes_exactly_one_shared_turn_per_recorded_call(
    fleet_with_budget: None, round_robin: None, settings: Any
) -> None:
    # Never routed on remembered state, so never routed twice for one call.
    picks = [route("llama3.1:8b").result.backend_name for _ in range(6)]
    turns = len(set(picks))
    assert turns >= 2
    assert picks == [picks[call % turns] for call in range(6)]
    assert RoutingDecision.objects.count() == 6
    counters = SqliteState(Path(settings.NEXUS_SHARED_STATE_FILE))
    assert counters.incr("rr:llama3.1:8b") == 7  # six turns, then this one


def test_a_config_change_between_calls_decides_the_next_call(
    fleet_with_budget: None,
) -> None:
    first = route("llama3.1:8b").result.backend_name
    chosen = Backend.objects.get(name=first)
    chosen.enabled = False
    config_save(instance=chosen, actor="test")
    second = route("llama3.1:8b")
    assert second.result.backend_name not in (first, None)
    stored = RoutingDecision.objects.get(pk=second.decision_id)
    assert stored.config_version == config_version_current()


def test_spend_from_elsewhere_past_the_soft_limit_is_seen_by_the_next_call(
    fleet_with_budget: None,
) -> None:
    assert route("gpt-4o").result.annotations["budget_status"] == "normal"
    # A usage report settled by another process: no config version change.
    Budget.objects.filter(name="global").update(spent_usd=Decimal("6"))
    annotations = route("gpt-4o").result.annotations
    assert annotations["budget_status"] == "soft_limit"
    assert annotations["prefer_cheaper"] is True


def test_a_budget_period_rolled_over_elsewhere_is_the_period_reserved_on(
    fleet_with_budget: None,
) -> None:
    route("gpt-4o")
    Budget.objects.filter(name="global").update(
        period_start=date(2031, 1, 1), period_end=date(2031, 2, 1)
    )
    second = route("gpt-4o")
    entry = LedgerEntry.objects.get(decision_id=second.decision_id)
    assert entry.period_start == date(2031, 1, 1)


def test_a_budget_removed_elsewhere_is_not_reserved_on(
    fleet_with_budget: None,
) -> None:
    route("gpt-4o")
    Budget.objects.filter(name="global").update(monthly_limit_usd=None)
    second = route("gpt-4o")
    assert not LedgerEntry.objects.filter(decision_id=second.decision_id).exists()
    assert second.result.outcome is Outcome.ROUTE
