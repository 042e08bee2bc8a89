"""The decision page in Chromium: a fallback decision's trace groups collapse and
expand, and a re-run shows configuration and observed-state changes apart."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import login

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _fallback_decision() -> Any:
    from routing.models import RoutingDecision
    from routing.pipeline import RoutingRequest
    from routing.pipeline.rules import parse_privacy
    from routing.services.routing import route_request

    outcome = route_request(
        request=RoutingRequest(
            model="gpt-4o",
            body={"messages": [{"role": "user", "content": "x" * 800}]},
            privacy=parse_privacy("restricted"),
            sources={"privacy": "header"},
        ),
        request_id="req-fallback-gpt-4o",
        client="demo-app",
    )
    return RoutingDecision.objects.get(pk=outcome.decision_id)


def test_the_trace_groups_of_a_fallback_decision_collapse_and_expand(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    decision = _fallback_decision()
    assert decision.fallback_used
    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/decisions/{decision.id}/")

    groups = page.locator("details.trace-group")
    assert groups.count() == 3
    primary, last = groups.nth(0), groups.nth(2)
    # Only the attempt that decided is open; the others show their summary line.
    assert last.get_attribute("open") is not None
    assert last.locator("li.step").first.is_visible()
    assert primary.get_attribute("open") is None
    assert not primary.locator("li.step").first.is_visible()
    assert "fell back to 'claude-sonnet-4-5'" in primary.locator("summary").inner_text()
    assert "routed to vllm-a100" in last.locator("summary").inner_text()
    shoot(page, "decision-fallback")

    primary.locator("summary").click()
    primary.locator("li.step").first.wait_for(state="visible")
    assert primary.get_attribute("open") is not None
    assert "openai" in primary.locator("li.step", has_text="privacy").inner_text()
    primary.locator("summary").click()
    primary.locator("li.step").first.wait_for(state="hidden")
    assert primary.get_attribute("open") is None
    last.locator("summary").click()
    last.locator("li.step").first.wait_for(state="hidden")


def test_a_rerun_shows_observed_state_apart_from_configuration_changes(
    page: Any, live_server: Any, demo_world: Any, shoot: Any
) -> None:
    from routing.adapters import config_snapshot_invalidate
    from routing.models import Backend

    decision = _fallback_decision()
    # A probe-like change: no audit entry, no configuration version. Routing
    # sees latency within SNAPSHOT_MAX_AGE_S; forget the snapshot, not wait.
    Backend.objects.filter(name="vllm-a100").update(latency_ema_ms=19.0)
    config_snapshot_invalidate()
    login(page, live_server.url, "operator", "pw-operator")
    page.goto(f"{live_server.url}/decisions/{decision.id}/")
    page.click("text=Re-run against today's configuration")
    page.wait_for_selector("#rerun .rerun")
    config = page.locator("#rerun .config-changes").inner_text()
    observed = page.locator("#rerun .observed-changes").inner_text()
    assert "None." in config
    assert "latency factor of vllm-a100" in observed
    assert "latency today 19 ms" in observed
    page.locator("#rerun").scroll_into_view_if_needed()
    shoot(page, "decision-rerun", full_page=False)
