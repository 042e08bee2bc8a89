"""Chromium (Debian's package) driven by Playwright against pytest-django's live server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.conftest import require_service

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots go here when set (``docs/screenshots`` to refresh the README's).
SCREENSHOT_DIR = os.environ.get("NEXUS_SCREENSHOT_DIR", "")


@pytest.fixture
def chromium() -> Iterator[Any]:
    require_service(CHROMIUM.exists(), "needs Chromium: apt-get install chromium")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in
    # the test body are still plain synchronous code. One browser per test, so
    # no Playwright loop outlives the test (later tests' database setup would
    # otherwise run beside it).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="nexus-chromium-"),
            executable_path=str(CHROMIUM),
            args=LAUNCH_ARGS,
            headless=True,
            viewport={"width": 1360, "height": 900},
        )
        yield browser
        browser.close()
        # ORM calls made while Playwright runs use their own connection (Django
        # keys connections by context); close it here, in that same context, or
        # it stays open and the test database cannot be dropped at the end.
        connections.close_all()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    chromium.clear_cookies()
    tab = chromium.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    # Stop htmx timers (live feed, lazy panels) and let in-flight requests end
    # before the test database is flushed under the live server's threads.
    tab.goto("about:blank")
    tab.wait_for_timeout(500)
    tab.close()


@pytest.fixture
def shoot(tmp_path: Path) -> Any:
    """Save a full-page screenshot named ``name``.png."""
    folder = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, *, full_page: bool = True) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def demo_world(django_user_model: Any) -> dict[str, Any]:
    """The demo fleet, two people, and a realistic handful of recorded decisions."""
    from django.apps import apps as django_apps
    from django.contrib.auth.models import Group

    from routing.pipeline import RoutingRequest
    from routing.pipeline.rules import parse_privacy
    from routing.services.demo import demo_fleet_load
    from routing.services.ledger import usage_record
    from routing.services.routing import route_request

    # The migration-seeded rows (zones, global budget, config version): restored
    # by serialized_rollback, and seeded again here (idempotent) in case an
    # earlier transactional test in the session flushed them.
    seed = import_module("routing.migrations.0002_seed_zones_budget_version").seed
    seed(django_apps, None)
    import_module("routing.migrations.0007_operators_and_admins_groups").create_groups(
        django_apps, None
    )
    demo_fleet_load()
    operator = django_user_model.objects.create_user(
        username="operator", password="pw-operator", is_staff=True
    )
    operator.groups.add(Group.objects.get(name="operators"))
    django_user_model.objects.create_user(username="viewer", password="pw-viewer")
    calls = [
        ("gpt-4o", None, 3000),
        ("internal-chat", None, 400),
        ("claude-sonnet-4-5", "restricted", 800),
        ("smart", None, 1200),
        ("llama3.1:70b", None, 9000),
        ("claude-haiku-4-5", None, 600),
        ("llava:13b", "restricted", 200),
        ("gpt-4o-mini", "zone:local", 300),
        ("no-such-model", None, 100),
        ("fast", None, 250),
    ]
    decisions = {}
    for index, (model, privacy, chars) in enumerate(calls):
        outcome = route_request(
            request=RoutingRequest(
                model=model,
                body={"messages": [{"role": "user", "content": "x" * chars}]},
                privacy=parse_privacy(privacy) if privacy else None,
                sources={"privacy": "header"} if privacy else {},
            ),
            request_id=f"req-{index:03d}-{model.replace(':', '-')}",
            client="demo-app",
        )
        decisions[model] = outcome
        cost = outcome.result.estimated_cost_usd or 0
        if outcome.result.outcome == "route" and cost > 0 and index % 2 == 0:
            usage_record(
                decision_id=outcome.decision_id,
                input_tokens=chars // 4,
                output_tokens=256,
                reporter=None,
                cost_usd=Decimal("31.5") * (index + 1),
            )
    return decisions


def login(page: Any, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
