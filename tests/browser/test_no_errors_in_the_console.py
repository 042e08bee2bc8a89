"""No page of the explorer (nor the login page) makes the browser log an error
or fetch anything that fails: every asset, the favicon included, is there."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import login

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _watch(page: Any) -> list[str]:
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))
    return problems


def test_no_explorer_page_logs_an_error_or_gets_a_failed_response(
    page: Any, live_server: Any, demo_world: Any
) -> None:
    from routing.models import RoutingDecision

    problems = _watch(page)
    page.goto(f"{live_server.url}/login/")
    page.wait_for_load_state("networkidle")
    login(page, live_server.url, "operator", "pw-operator")
    paths = ["/", "/simulate/", "/backends/", "/spend/", "/config/", "/drafts/"]
    paths += [f"/decisions/{d.pk}/" for d in RoutingDecision.objects.all()[:3]]
    for path in paths:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    assert problems == []


def test_every_page_links_a_favicon_that_loads(
    page: Any, live_server: Any, demo_world: Any
) -> None:
    problems = _watch(page)
    page.goto(f"{live_server.url}/login/")
    href = page.locator("link[rel=icon]").get_attribute("href")
    assert href and href.endswith(".svg")
    icon = page.request.get(f"{live_server.url}{href}")
    assert icon.status == 200 and "<svg" in icon.text()
    # Browsers (and bookmarks, feed readers...) also ask for /favicon.ico.
    legacy = page.request.get(f"{live_server.url}/favicon.ico")
    assert legacy.status == 200 and "<svg" in legacy.text()
    assert problems == []
