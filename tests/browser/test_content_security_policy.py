"""Under the Content-Security-Policy every page still works in Chromium: htmx
swaps, the vendored assets load, the admin and the built-in API docs render, and
the browser reports no violation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import login

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _watch(page: Any) -> list[str]:
    """Collect CSP violations and script errors the page reports."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('Content Security Policy violation: ' + e.violatedDirective"
        " + ' ' + e.blockedURI));"
    )
    return problems


def test_every_explorer_page_works_without_a_policy_violation(
    page: Any, live_server: Any, demo_world: Any
) -> None:
    from routing.models import RoutingDecision

    problems = _watch(page)
    login(page, live_server.url, "operator", "pw-operator")
    decision = RoutingDecision.objects.order_by("created_at").first()
    assert decision is not None
    for path in (
        "/",
        f"/decisions/{decision.pk}/",
        "/simulate/",
        "/backends/",
        "/spend/",
        "/config/",
        "/drafts/",
    ):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    # htmx still swaps under the policy: a filter updates the list in place.
    page.goto(f"{live_server.url}/")
    page.evaluate("window.__same_page = true")
    page.select_option("select[name=outcome]", "reject")
    page.wait_for_url(re.compile(r"outcome=reject"))
    page.wait_for_function(
        "document.querySelectorAll('#rows tr.decision').length === "
        "document.querySelectorAll('#rows tr.outcome-reject').length"
    )
    assert page.evaluate("window.__same_page") is True
    assert problems == []


def test_the_admin_works_without_a_policy_violation(
    page: Any, live_server: Any, demo_world: Any, django_user_model: Any
) -> None:
    from routing.models import Backend

    django_user_model.objects.create_superuser(username="root", password="pw-root")
    problems = _watch(page)
    login(page, live_server.url, "root", "pw-root")
    backend = Backend.objects.order_by("name").first()
    assert backend is not None
    for path in (
        "/admin/",
        "/admin/routing/backend/",
        f"/admin/routing/backend/{backend.pk}/change/",
        "/admin/routing/budget/",
    ):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.locator("#content").count() == 1
    assert problems == []


def _offline(page: Any, origin: str) -> list[str]:
    """Refuse every request that leaves Nexus (as a network without internet
    would); return the URLs that were tried."""
    tried: list[str] = []

    def handle(route: Any) -> None:
        url = route.request.url
        if url.startswith((origin, "data:", "blob:")):
            route.continue_()
        else:
            tried.append(url)
            route.abort()

    page.route("**/*", handle)
    return tried


def test_the_api_docs_render_offline_without_a_policy_violation(
    page: Any, live_server: Any
) -> None:
    problems = _watch(page)
    outside = _offline(page, live_server.url)
    page.goto(f"{live_server.url}/api/v1/docs/")
    # Swagger UI built the operation list from the schema, from Nexus's own
    # assets only: every request that leaves Nexus is refused.
    page.wait_for_selector(".opblock-tag", timeout=20_000)
    assert page.locator("[data-path='/api/v1/route']").count() >= 1
    assert problems == []
    assert outside == []


def test_redoc_renders_offline(page: Any, live_server: Any) -> None:
    problems = _watch(page)
    outside = _offline(page, live_server.url)
    page.goto(f"{live_server.url}/api/v1/redoc/")
    # ReDoc rendered the schema: its title, and an operation's section.
    page.wait_for_selector("h1:has-text('Nexus routing API')", timeout=20_000)
    assert page.locator("[data-section-id^='tag/']").count() >= 1
    # ReDoc's bundle always asks for its "by Redocly" logo from its CDN (and
    # hides it when it fails); the policy blocks it. Nothing else leaves Nexus.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [p for p in problems if logo not in p] == []
    assert outside == []
