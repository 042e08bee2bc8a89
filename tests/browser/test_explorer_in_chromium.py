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
    from routing.services.decision_templates import decision_view

    decision = RoutingDecision.objects.get(request_id__contains="claude-sonnet")
    assert decision.outcome == "reject"
    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/?outcome=reject")
    page.click(f"#d-{decision.id} a")
    page.wait_for_url(re.compile(str(decision.id)))
    for entry in decision_view(decision)["trace"]:
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


def test_the_spend_page_draws_its_charts_and_switches_the_stack_in_place(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/budget/")  # the old address
    page.wait_for_url(f"{live_server.url}/spend/")
    page.wait_for_selector("#outcomes svg")
    assert page.locator("svg.spend-chart rect.bar-series").count() >= 1
    assert page.locator("svg.accuracy-chart rect.bar-real").count() >= 1
    assert page.locator("svg .hard-mark").count() == 3  # global, cloud, demo-team
    assert page.locator("text=New budget").count() == 0  # operators only view
    shoot(page, "spend")
    page.evaluate("window.__same_page = true")
    page.click(".stack-links >> text=client")
    page.wait_for_url(re.compile(r"stack=client"))
    page.wait_for_selector(".stack-links a.current:text('client')")
    titles = page.locator("svg.spend-chart rect.bar-series title").all_text_contents()
    assert titles and all("demo-app" in title for title in titles)
    assert page.evaluate("window.__same_page") is True  # swapped, not reloaded


def test_staff_create_and_edit_a_budget_on_the_spend_page(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from routing.models import AuditEntry, Budget

    admin = get_user_model().objects.create_user(username="ann", password="pw-ann")
    admin.groups.add(Group.objects.get(name="admins"))
    login(page, live_server.url, "ann", "pw-ann")
    page.goto(f"{live_server.url}/spend/")
    page.evaluate("window.__same_page = true")
    page.click("text=New budget")
    form = page.locator("#budget-new form.budget-form")
    form.locator("input[name=name]").fill("gpt-team")
    form.locator("input[name=monthly_limit_usd]").fill("25")
    form.locator("input[name=clients]").fill("demo-app, batch")
    form.locator("input[name=models]").fill("gpt-[4")
    form.locator("select[name=zones]").select_option(["cloud"])
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#budget-new .field-models .field-error")
    shoot(page, "spend-budget-inline-error")
    assert not Budget.objects.filter(name="gpt-team").exists()
    form = page.locator("#budget-new form.budget-form")
    form.locator("input[name=models]").fill("gpt-*")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#budget-gpt-team")
    card = page.locator("#budget-gpt-team")
    assert "requests from clients demo-app or batch" in card.inner_text()
    assert "on backends in zone cloud" in card.inner_text()
    card.locator("text=Edit").click()
    form = page.locator("#budget-form-gpt-team form.budget-form")
    form.locator("input[name=monthly_limit_usd]").fill("30")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#budget-gpt-team .saved")
    assert page.evaluate("window.__same_page") is True
    budget = Budget.objects.get(name="gpt-team")
    assert budget.scope == {
        "clients": ["demo-app", "batch"],
        "models": ["gpt-*"],
        "zones": ["cloud"],
    }
    assert str(budget.monthly_limit_usd) == "30.000000"
    assert AuditEntry.objects.filter(object_name="gpt-team", actor="ann").count() >= 2
