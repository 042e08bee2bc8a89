"""One decision replayed under a draft (the decision page's re-run) gives the
verdict a backtest of it stores: the same world, row and replayer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from routing.api.draft_changes import change_write
from routing.errors import NotFoundError
from routing.models import BacktestChange, RoutingDecision
from routing.services.backtests import decision_replay
from routing.services.drafts import DraftChange
from tests.services.test_backtests import draft, record_traffic, run

pytestmark = pytest.mark.django_db


def test_each_decision_replays_alone_as_the_backtest_replayed_it(
    fleet: Any, settings: Any
) -> None:
    record_traffic(settings)
    draft_id = draft(
        DraftChange("backends", "update", "local-gpu", {"privacy_zone": "cloud"})
    )
    backtest = run(draft_id)
    stored = {
        c.decision_id: c for c in BacktestChange.objects.filter(backtest=backtest)
    }
    assert stored
    count = RoutingDecision.objects.count()
    for decision in RoutingDecision.objects.all():
        replay = decision_replay(
            decision_id=decision.pk, draft_id=draft_id, write=change_write
        )
        change = stored.get(decision.pk)
        assert replay.verdict.changed is (change is not None)
        if change is not None:
            assert json.loads(replay.verdict.after) == change.after
            assert replay.result.outcome.value == change.after["outcome"]
    assert RoutingDecision.objects.count() == count  # nothing recorded


def test_an_unknown_decision_is_not_found(fleet: Any) -> None:
    with pytest.raises(NotFoundError):
        decision_replay(
            decision_id=uuid.UUID(int=0),
            draft_id=None,
            write=change_write,
        )
