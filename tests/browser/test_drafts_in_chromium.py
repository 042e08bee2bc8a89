"""The Drafts page in a real browser: an operator creates a draft, adds an
invalid change and sees the live edit's message at the field, fixes it, and
applies the draft as one config version."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import login

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_an_operator_fixes_an_invalid_change_and_applies_the_draft(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    from routing.models import Backend, Draft
    from routing.services.config import config_version_current

    login(page, live_server.url, "operator", "pw-operator")
    page.click("nav >> text=Drafts")
    page.wait_for_url(f"{live_server.url}/drafts/")
    page.fill("input[name=name]", "prefer the rack")
    page.click("form.new-draft-form button[type=submit]")
    draft = Draft.objects.get(name="prefer the rack")
    page.wait_for_url(f"{live_server.url}/drafts/{draft.pk}/")

    page.evaluate("window.__same_page = true")
    target = page.locator("form.target-backends")
    target.locator("select[name=target-action]").select_option("update")
    target.locator("select[name=target-name]").select_option("ollama-rack")
    target.locator("button[type=submit]").click()
    form = page.locator("#change-form form.change-backends")
    assert form.locator("input[name=priority]").input_value() != ""
    form.locator("input[name=priority]").fill("500")
    form.locator("button[type=submit]").click()
    error = page.locator("#change-form .field-priority .field-error")
    error.wait_for()
    assert "Priority" in error.inner_text()
    shoot(page, "draft-inline-error")
    assert Draft.objects.get(pk=draft.pk).changes == []

    form.locator("input[name=priority]").fill("5")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#change-1")
    assert "priority" in page.locator("#change-1").inner_text()
    assert page.evaluate("window.__same_page") is True  # htmx, no reload
    assert Backend.objects.get(name="ollama-rack").priority != 5  # not live yet

    before = config_version_current()
    page.click("summary:has-text('Apply…')")
    page.click("button.apply-now")
    page.wait_for_selector("text=Applied as config version")
    shoot(page, "draft-applied")
    assert Backend.objects.get(name="ollama-rack").priority == 5
    assert config_version_current() == before + 1
    assert page.locator("#add-change").count() == 0  # read-only now
    page.click(f"a:has-text('config version v{before + 1}')")
    page.wait_for_url(f"{live_server.url}/config/?version={before + 1}")
    assert "ollama-rack" in page.locator("tr.audit-entry").first.inner_text()
