"""Backtests replay recorded decisions: an empty draft changes nothing, a draft
changes exactly the decisions it should, live routing never sees it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from routing.adapters import config_snapshot, shared_pipeline_reset
from routing.api.draft_changes import change_write
from routing.models import Backtest, BacktestChange, RoutingDecision
from routing.pipeline import RoutingRequest
from routing.pipeline.rules import parse_privacy
from routing.replay import replay_body
from routing.services.backtests import backtest_request, backtest_run, decision_row
from routing.services.config import config_version_current
from routing.services.decision_templates import decision_view
from routing.services.drafts import DraftChange, draft_create
from routing.services.routing import route_request
from tests.fleet_rows import add_policy, set_budget

pytestmark = pytest.mark.django_db

STRATEGIES = ("smart", "priority", "round_robin", "random")


def ask(
    model: str,
    *,
    tokens: int = 200,
    privacy: str | None = None,
    client: str = "svc",
    output_tokens: int = 100,
    request_id: str = "r",
) -> None:
    """Route (and record) one request, its privacy stated in a header."""
    request = RoutingRequest(
        model=model,
        body=replay_body(
            input_tokens=tokens,
            output_tokens=output_tokens,
            vision=False,
            tools=False,
            json_mode=False,
        ),
        privacy=parse_privacy(privacy) if privacy else None,
        sources={"privacy": "header"} if privacy else {},
    )
    route_request(request=request, request_id=request_id, client=client)


def restricted_routes() -> set[Any]:
    """Ids of the routed decisions whose constraints are ``restricted``."""
    return {
        decision.id
        for decision in RoutingDecision.objects.filter(outcome="route")
        if decision_view(decision)["constraints"]["privacy"]["value"] == "restricted"
    }


def record_traffic(settings: Any, strategies: tuple[str, ...] = STRATEGIES) -> int:
    """Mixed traffic (routes, rejects; restricted and not) under each strategy."""
    for strategy in strategies:
        settings.NEXUS_SELECTION_STRATEGY = strategy
        shared_pipeline_reset()
        for i in range(6):
            ask("llama3.1:8b", tokens=100 + i)
            ask("llama3.1:8b", tokens=300, privacy="restricted")
            ask("gpt-4o", tokens=50 * (i + 1))
        ask("gpt-4o", privacy="restricted")  # no private backend serves it
        ask("no-such-model")
    settings.NEXUS_SELECTION_STRATEGY = "smart"
    shared_pipeline_reset()
    return RoutingDecision.objects.count()


def window() -> tuple[Any, Any]:
    now = timezone.now()
    return now - timedelta(hours=1), now + timedelta(minutes=1)


def run(draft_id: int | None = None, workers: int = 1, **filters: str) -> Backtest:
    since, until = window()
    backtest, created = backtest_request(
        draft_id=draft_id,
        since=since,
        until=until,
        filters=filters,
        actor="t",
        enqueue=False,
    )
    assert created
    finished = backtest_run(
        backtest_id=backtest.pk, write=change_write, workers=workers
    )
    assert finished is not None
    assert finished.status == "done", finished.error
    return finished


def draft(*changes: DraftChange) -> int:
    return draft_create(
        name="d", changes=changes, actor="olivia", write=change_write
    ).pk


def test_an_empty_draft_changes_no_decision_under_any_strategy(
    fleet: Any, settings: Any
) -> None:
    recorded = record_traffic(settings)
    outcomes = set(RoutingDecision.objects.values_list("outcome", flat=True))
    assert outcomes == {"route", "reject"}
    backtest = run(draft(DraftChange("zones", "update", "cloud", {"description": "x"})))
    summary = backtest.summary
    assert summary["total"] == recorded
    assert summary["changed"] == 0
    assert summary["unchanged"] == recorded
    assert summary["privacy_violations"] == 0
    assert summary["approximate"] == 0  # every decision recorded its own constraints
    assert summary["estimated_cost_usd"]["delta"] == 0
    assert not BacktestChange.objects.exists()


def test_a_backend_moved_to_a_cloud_zone_shifts_exactly_the_restricted_decisions(
    fleet: Any, settings: Any
) -> None:
    record_traffic(settings)
    restricted = len(restricted_routes())
    assert restricted > 0
    version = config_version_current()
    backtest = run(
        draft(DraftChange("backends", "update", "local-gpu", {"privacy_zone": "cloud"}))
    )
    summary = backtest.summary
    assert summary["changed"] == restricted
    assert summary["outcomes"]["route->reject"] == restricted
    assert summary["newly_rejected_by"] == {"privacy": restricted}
    assert summary["backend_shift"] == {"local-gpu->(none)": restricted}
    assert summary["privacy_violations"] == 0
    changed = set(BacktestChange.objects.values_list("decision_id", flat=True))
    expected = restricted_routes()
    assert changed == expected
    # Live routing never saw the draft.
    assert config_version_current() == version
    assert config_snapshot().backends[0].privacy_zone in {"local", "cloud"}
    local = next(b for b in config_snapshot().backends if b.name == "local-gpu")
    assert local.privacy_zone == "local"


def test_a_lowered_budget_rejects_the_priced_decisions(
    fleet: Any, settings: Any
) -> None:
    set_budget("100")
    record_traffic(settings, ("smart",))
    priced = RoutingDecision.objects.filter(
        outcome="route", estimated_cost_usd__gt=0
    ).count()
    assert priced > 0
    backtest = run(
        draft(
            DraftChange(
                "budgets",
                "update",
                "global",
                {"monthly_limit_usd": "0.000001", "hard_limit_action": "block_all"},
            )
        )
    )
    summary = backtest.summary
    assert summary["newly_rejected_by"].get("budget", 0) >= 1
    assert (
        summary["estimated_cost_usd"]["after"] < summary["estimated_cost_usd"]["before"]
    )


def test_the_pool_of_worker_processes_gives_the_same_summary(
    fleet: Any, settings: Any
) -> None:
    record_traffic(settings)
    change = DraftChange("backends", "update", "local-gpu", {"privacy_zone": "cloud"})
    here = run(draft(change)).summary
    BacktestChange.objects.all().delete()
    Backtest.objects.all().delete()
    pooled = run(draft(change), workers=2).summary
    assert pooled == here


def test_a_draft_removing_a_policy_restates_only_what_the_request_asked(
    fleet: Any, settings: Any
) -> None:
    add_policy("private-llama", "llama*", privacy="restricted")
    record_traffic(settings, ("smart",))
    backtest = run(draft(DraftChange("policies", "delete", "private-llama")))
    summary = backtest.summary
    assert summary["changed"] > 0
    assert summary["privacy_violations"] == 0
    # Requests that stated "restricted" themselves stay on the private backend.
    header_restricted = {
        decision.id
        for decision in RoutingDecision.objects.all()
        if "header" in decision_view(decision)["constraints"]["privacy"]["sources"]
    }
    assert header_restricted
    changed = BacktestChange.objects.values_list("decision_id", "after")
    assert not {decision for decision, _ in changed} & header_restricted
    assert {after["backend"] for _, after in changed} == {"cloud-llama"}


def test_cancelling_a_running_backtest_stops_it_at_the_next_batch(
    fleet: Any, settings: Any
) -> None:
    from routing.services.backtests import backtest_cancel

    record_traffic(settings, ("smart",))
    since, until = window()
    backtest, _ = backtest_request(
        draft_id=None, since=since, until=until, filters={}, actor="t", enqueue=False
    )
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done > 0:
            backtest_cancel(backtest_id=backtest.pk)

    finished = backtest_run(
        backtest_id=backtest.pk, write=change_write, progress=progress, batch_size=5
    )
    assert finished is not None
    assert finished.status == "cancelled"
    assert finished.summary is None
    assert seen == [0, 5]
    assert finished.progress_done < finished.progress_total


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_backtest_leaves_the_cached_live_snapshot_and_version_alone(
    fleet: Any, settings: Any
) -> None:
    from routing import adapters

    record_traffic(settings, ("smart",))
    live = config_snapshot()  # committed rows: cached for this process
    assert adapters._cache.snapshot is live
    version = config_version_current()
    backtest = run(
        draft(DraftChange("backends", "update", "local-gpu", {"privacy_zone": "cloud"}))
    )
    assert backtest.summary["changed"] > 0
    assert adapters._cache.snapshot is live
    assert config_snapshot() is live
    assert config_version_current() == version
    local = next(b for b in live.backends if b.name == "local-gpu")
    assert local.privacy_zone == "local"


def test_a_draft_that_no_longer_applies_fails_the_backtest_with_the_reason(
    fleet: Any,
) -> None:
    from routing.services.config import config_save

    draft_id = draft(DraftChange("backends", "update", "local-gpu", {"priority": 5}))
    backend = fleet["local-gpu"]
    backend.name = "local-gpu-2"
    config_save(instance=backend, actor="someone")
    since, until = window()
    backtest, _ = backtest_request(
        draft_id=draft_id,
        since=since,
        until=until,
        filters={},
        actor="t",
        enqueue=False,
    )
    finished = backtest_run(backtest_id=backtest.pk, write=change_write)
    assert finished is not None
    assert finished.status == "failed"
    assert "no longer applies" in finished.error
    assert "changes.0.name" in finished.error


def test_a_decision_records_the_constraints_the_request_itself_stated(
    fleet: Any,
) -> None:
    add_policy("tier-4-for-llama", "llama*", min_tier=4)
    request = RoutingRequest(
        model="llama3.1:8b",
        body=replay_body(
            input_tokens=100,
            output_tokens=10,
            vision=False,
            tools=False,
            json_mode=False,
        ),
        privacy=parse_privacy("restricted"),
        min_tier=2,
        sources={"privacy": "header", "min_tier": "body"},
    )
    outcome = route_request(request=request, request_id="r1", client="c")
    row = decision_row(decision_id=outcome.decision_id)
    assert row is not None
    assert json.loads(row.request_constraints) == {
        "privacy": "restricted",
        "min_tier": 2,
        "sources": {"privacy": "header", "min_tier": "body"},
    }
    # The combined constraints keep the policy's higher tier.
    assert json.loads(row.constraints)["min_tier"]["value"] == 4
