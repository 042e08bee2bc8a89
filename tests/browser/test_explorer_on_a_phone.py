"""Every explorer page at a phone's width (390 x 844): no sideways scrolling of
the page, the navigation reachable, charts drawn without clipped labels."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import login

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PHONE = {"width": 390, "height": 844}


def _pages(demo_world: Any) -> list[str]:
    from routing.api.draft_changes import change_write
    from routing.models import Draft, RoutingDecision
    from routing.services.drafts import DraftChange, draft_create

    draft = Draft.objects.first() or draft_create(
        name="phone",
        changes=[
            DraftChange("backends", "update", "ollama-rack", {"priority": 5}),
            DraftChange("zones", "create", "eu-west-with-a-long-name", {}),
        ],
        actor="operator",
        write=change_write,
    )
    routed = RoutingDecision.objects.get(request_id__contains="gpt-4o-mini")
    rejected = RoutingDecision.objects.get(request_id__contains="claude-sonnet")
    backtest = _finished_backtest()
    change = backtest.changes.first()
    assert change is not None
    return [
        "/",
        f"/decisions/{routed.pk}/",
        f"/decisions/{rejected.pk}/",
        "/simulate/?model=gpt-4o&input_tokens=1500&output_tokens=256&vision=on",
        "/backends/",
        "/spend/",
        "/config/",
        "/drafts/",
        f"/drafts/{draft.pk}/",
        f"/backtests/{backtest.pk}/",
        f"/backtests/{backtest.pk}/changes/{change.decision_id}/",
    ]


def _finished_backtest() -> Any:
    """A done backtest with changed decisions (openai disabled), run here."""
    from datetime import timedelta

    from django.utils import timezone

    from routing.api.draft_changes import change_write
    from routing.models import Backtest
    from routing.services.backtests import backtest_request, backtest_run
    from routing.services.drafts import DraftChange, draft_create

    done = Backtest.objects.filter(status="done").first()
    if done is not None:
        return done
    draft = draft_create(
        name="no openai",
        changes=[DraftChange("backends", "update", "openai", {"enabled": False})],
        actor="operator",
        write=change_write,
    )
    now = timezone.now()
    backtest, _ = backtest_request(
        draft_id=draft.pk,
        since=now - timedelta(hours=1),
        until=now + timedelta(minutes=1),
        filters={},
        actor="operator",
        enqueue=False,
    )
    return backtest_run(backtest_id=backtest.pk, write=change_write, workers=1)


def test_every_explorer_page_fits_a_390px_screen_with_its_navigation_usable(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    page.set_viewport_size(PHONE)
    login(page, live_server.url, "operator", "pw-operator")
    for path in _pages(demo_world):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width}px wide"
        links = page.locator("header.top nav a")
        assert links.count() == 6
        for index in range(links.count()):
            link = links.nth(index)
            assert link.is_visible(), path
            box = link.bounding_box()
            assert box is not None
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], path
    # A nav link is clickable, not covered by anything.
    page.click("header.top nav >> text=Decisions")
    page.wait_for_url(f"{live_server.url}/")
    shoot(page, "decisions-390")
    page.goto(f"{live_server.url}{_pages(demo_world)[1]}")
    shoot(page, "decision-390")
    page.click("header.top nav >> text=Spend")
    page.wait_for_url(f"{live_server.url}/spend/")


def test_wide_tables_scroll_inside_themselves_on_a_phone(
    page: Any, live_server: Any, demo_world: Any
) -> None:
    page.set_viewport_size(PHONE)
    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/backends/")
    table = page.locator("#backends")
    sizes = table.evaluate("t => [t.scrollWidth, t.clientWidth]")
    assert sizes[0] > sizes[1]  # wider than the screen ...
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    table.evaluate("t => { t.scrollLeft = t.scrollWidth; }")  # ... but scrolls
    assert table.evaluate("t => t.scrollLeft") > 0


def test_the_spend_charts_use_the_full_width_and_no_label_is_clipped(
    page: Any, live_server: Any, demo_world: Any
) -> None:
    from decimal import Decimal

    from routing.models import Budget

    # Early in a period the projection sits at the gauge's left edge.
    Budget.objects.update(
        monthly_limit_usd=Decimal(1000), spent_usd=Decimal("0.5"), reserved_usd=0
    )
    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/spend/")
    page.wait_for_selector("#outcomes svg")
    assert page.locator("svg text", has_text="projected").count() >= 1
    for chart in page.locator("svg.chart").all():
        card = chart.evaluate("s => s.closest('.card').clientWidth")
        assert chart.bounding_box()["width"] >= card - 40  # padding only
        clipped = chart.evaluate(
            """svg => {
                const box = svg.viewBox.baseVal;
                return [...svg.querySelectorAll('text')]
                  .map(t => [t.textContent, t.getBBox()])
                  .filter(([, b]) => b.x < box.x || b.x + b.width > box.x + box.width)
                  .map(([text]) => text);
            }"""
        )
        assert clipped == []
