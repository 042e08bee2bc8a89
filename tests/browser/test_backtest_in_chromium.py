"""A backtest in a real browser, run by a real Celery worker: an operator starts
one on a draft from the draft's page, watches the progress bar reach done
without reloading, and opens a changed decision's before and after.

The worker is a subprocess on the test's own database and the configured
broker (``tests/tasks/test_real_worker.py``'s fixtures): PostgreSQL and a
broker locally, as in CI (where a missing one fails the test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import login
from tests.tasks.test_real_worker import celery, celery_env, worker_args

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

__all__ = ["celery_env"]  # a fixture this test uses


def test_an_operator_watches_a_backtest_finish_and_opens_a_changed_decision(
    page: Any,
    live_server: Any,
    demo_world: Any,
    celery_env: dict[str, str],
    tmp_path: Path,
    shoot: Any,
) -> None:
    from routing.api.draft_changes import change_write
    from routing.models import Backtest, BacktestChange, RoutingDecision
    from routing.services.drafts import DraftChange, draft_create

    on_openai = RoutingDecision.objects.filter(backend_name="openai").count()
    assert on_openai > 0  # the demo traffic has decisions a draft can move
    draft = draft_create(
        name="retire openai",
        changes=[DraftChange("backends", "update", "openai", {"enabled": False})],
        actor="operator",
        write=change_write,
    )

    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/drafts/{draft.pk}/")
    form = page.locator("#backtest form.backtest-form")
    assert form.locator("input[name=since]").input_value() != ""
    form.locator("button.start-backtest").click()
    page.wait_for_url(f"{live_server.url}/backtests/*/")
    backtest = Backtest.objects.get()
    assert backtest.draft_id == draft.pk
    assert page.locator("#backtest-status").inner_text() == "queued"  # no worker yet
    page.evaluate("window.__same_page = true")

    with celery(worker_args(), celery_env, tmp_path / "worker.log"):
        page.wait_for_selector("#backtest-status:text('done')", timeout=90_000)
    assert page.evaluate("window.__same_page") is True  # polled, not reloaded
    assert page.locator("#backtest-bar").get_attribute("value") == "100"
    assert page.locator("#backtest-body").get_attribute("hx-trigger") is None
    changed = BacktestChange.objects.filter(backtest=backtest).count()
    assert changed >= on_openai
    assert page.locator("#summary-changed").inner_text() == str(changed)
    assert page.locator("svg.outcome-shift").count() == 1
    shoot(page, "backtest-done")

    page.locator("a.open-change").first.click()
    side = page.locator("#change-detail .side-by-side")
    side.wait_for()
    assert "as recorded" in side.locator(".before").inner_text()
    assert "Trace" in side.locator(".before").inner_text()
    after = side.locator(".after").inner_text()
    assert "replayed under draft" in after
    assert page.evaluate("window.__same_page") is True
    shoot(page, "backtest-before-after")
