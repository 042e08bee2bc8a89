"""The explorer in a real browser: login, filters, a rejected decision, the
simulator, a staff inline edit that lands in the audit log, a viewer who cannot edit."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import login

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_an_operator_logs_in_and_sees_the_decisions(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    page.goto(f"{live_server.url}/backends/")
    assert "/login/" in page.url  # login required
    shoot(page, "login")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", "pw-operator")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/backends/")
    page.goto(f"{live_server.url}/")
    assert page.locator("#rows tr.decision").count() == 10
    shoot(page, "decisions")


def test_filtering_updates_the_list_and_the_url_without_a_reload(
    page: Any, live_server: Any, demo_world: Any
) -> None:
    login(page, live_server.url, "operator", "pw-operator")
    page.evaluate("window.__same_page = true")
    page.select_option("select[name=outcome]", "reject")
    page.wait_for_url(re.compile(r"outcome=reject"))
    page.wait_for_function(
        "document.querySelectorAll('#rows tr.decision').length === "
        "document.querySelectorAll('#rows tr.outcome-reject').length"
    )
    assert page.locator("#rows tr.outcome-reject").count() >= 2
    assert page.evaluate("window.__same_page") is True  # no full reload
    page.select_option("select[name=excluded_by]", "privacy")
    page.wait_for_url(re.compile(r"excluded_by=privacy"))
    assert page.locator("#rows tr.decision").count() >= 1
    # The shared URL renders the same list on its own.
    page.goto(page.url)
    assert page.locator("select[name=outcome]").input_value() == "reject"


def test_a_rejected_decision_shows_each_exclusion_reason(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    from routing.models import RoutingDecision

    decision = RoutingDecision.objects.get(request_id__contains="claude-sonnet")
    assert decision.outcome == "reject"
    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/?outcome=reject")
    page.click(f"#d-{decision.id} a")
    page.wait_for_url(re.compile(str(decision.id)))
    for entry in decision.trace:
        for excluded in entry["excluded"]:
            row = page.locator("tr.exclusion", has_text=excluded["backend"])
            assert excluded["reason"] in row.inner_text()
    shoot(page, "decision-rejected")
    page.click("text=Re-run against today's configuration")
    page.wait_for_selector("#rerun .rerun")
    assert "nothing recorded" in page.locator("#rerun").inner_text()


def test_the_simulator_routes_a_described_request(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    from routing.models import RoutingDecision

    before = RoutingDecision.objects.count()
    login(page, live_server.url, "operator", "pw-operator")
    page.click("nav >> text=Simulator")
    page.fill("input[name=model]", "gpt-4o")
    page.fill("input[name=input_tokens]", "1500")
    page.check("input[name=vision]")
    page.fill("input[name=privacy]", "unrestricted")
    page.click("form.simulate button[type=submit]")
    page.wait_for_selector("#result .summary")
    assert "openai" in page.locator("#result .summary").inner_text()
    assert "model=gpt-4o" in page.url
    shoot(page, "simulator")
    assert RoutingDecision.objects.count() == before


def test_a_staff_edit_of_a_tier_shows_up_in_the_audit_log(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/backends/")
    shoot(page, "backends")
    row = page.locator("#backend-ollama-rack")
    row.locator("text=Edit").click()
    form = page.locator("#backend-ollama-rack form.inline-edit")
    form.locator("input[name=priority]").fill("500")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#backend-ollama-rack .field-error")
    shoot(page, "backends-inline-error")
    form = page.locator("#backend-ollama-rack form.inline-edit")
    form.locator("input[name=priority]").fill("30")
    form.locator("input[name=capability_tier]").fill("4")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#backend-ollama-rack .saved")
    assert page.locator("#backend-ollama-rack .tier").inner_text() == "4"
    page.goto(f"{live_server.url}/config/")
    first = page.locator("tr.audit-entry").first
    text = first.inner_text()
    assert "ollama-rack" in text and "capability_tier" in text
    assert "operator" in text and "4" in text
    shoot(page, "configuration-history", full_page=False)


def test_a_viewer_sees_no_edit_controls_and_is_refused(
    page: Any, live_server: Any, demo_world: Any
) -> None:
    login(page, live_server.url, "viewer", "pw-viewer")
    page.goto(f"{live_server.url}/backends/")
    assert page.locator("#backends").is_visible()
    assert page.locator("text=Edit").count() == 0
    status = page.evaluate(
        """async () => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['x-csrftoken'];
            const r = await fetch('/backends/ollama-rack/edit/', {method: 'POST',
              headers: {'X-CSRFToken': token, 'Content-Type': 'application/x-www-form-urlencoded'},
              body: 'capability_tier=1&priority=1&privacy_zone=local'});
            return r.status; }"""
    )
    assert status == 403


def test_the_budget_page_draws_its_charts(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/budget/")
    page.wait_for_selector("#outcomes svg")
    assert page.locator("svg .hard-mark").count() == 1
    shoot(page, "budget")
