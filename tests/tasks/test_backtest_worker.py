"""``routing.backtest_run`` under a real Celery worker on PostgreSQL: its
prefork child (a daemonic process) replays on a pool of spawned processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from routing.api.draft_changes import change_write
from routing.models import Backtest
from routing.services.backtests import backtest_request
from routing.services.drafts import DraftChange, draft_create
from tests.services.test_backtests import record_traffic, restricted_routes, window
from tests.tasks.test_real_worker import celery, celery_env, wait_for, worker_args

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

__all__ = ["celery_env"]


def test_a_worker_replays_a_backtest_on_two_processes_and_stores_the_summary(
    celery_env: dict[str, str], tmp_path: Path, fleet: Any, settings: Any
) -> None:
    recorded = record_traffic(settings)
    restricted = len(restricted_routes())
    change = DraftChange("backends", "update", "local-gpu", {"privacy_zone": "cloud"})
    draft = draft_create(name="m", changes=[change], actor="o", write=change_write)
    env = {**celery_env, "NEXUS_BACKTEST_WORKERS": "2"}
    prefork = [a for a in worker_args() if a != "--pool=solo"]
    with celery(
        [*prefork, "--pool=prefork", "--concurrency=1"], env, tmp_path / "w.log"
    ):
        since, until = window()
        backtest, _ = backtest_request(
            draft_id=draft.pk, since=since, until=until, filters={}, actor="t"
        )
        wait_for(
            lambda: Backtest.objects.get(pk=backtest.pk).status in {"done", "failed"},
            "the worker to finish the backtest",
        )
    finished = Backtest.objects.get(pk=backtest.pk)
    assert finished.status == "done", finished.error
    assert finished.summary["total"] == recorded
    assert finished.summary["changed"] == restricted
    assert finished.progress_done == finished.progress_total == recorded
    assert "routing.backtest_run" in (tmp_path / "w.log").read_text()
