"""A re-run tells configuration edits apart from observed-state changes (probes,
traffic, spend), then shows what the decision would change."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from routing.models import AuditEntry, Backend, Budget
from routing.services.config import config_save
from routing.services.decision_templates import decision_view
from tests.explorer.conftest import record
from tests.fleet_rows import set_budget

pytestmark = pytest.mark.django_db


def _part(html: str, name: str) -> str:
    """The inner HTML of one part of the re-run (config, observed, outcome)."""
    match = re.search(
        rf'<section class="rerun-part {name}">(.*?)</section>', html, re.S
    )
    assert match, f"no {name} part in the re-run"
    return match.group(1)


def _rerun(client, decision) -> str:  # type: ignore[no-untyped-def]
    url = reverse("explorer:decision-rerun", args=[decision.id])
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def test_a_config_edit_after_the_decision_shows_under_configuration_not_observed(
    staff_client, fleet
):
    decision = record("llama3.1:8b")
    assert decision.backend_name == "cloud-llama"
    backend = Backend.objects.get(name="cloud-llama")
    backend.priority = 90
    config_save(instance=backend, actor="olivia")

    html = _rerun(staff_client, decision)
    config = _part(html, "config-changes")
    assert f"Configuration changes since v{decision.config_version} (1)" in config
    assert 'class="config-change"' in config
    assert "cloud-llama" in config and "priority 10 → 90" in config
    assert "olivia" in config
    observed = _part(html, "observed-changes")
    assert "None seen." in observed and "cloud-llama" not in observed
    outcome = _part(html, "outcome-changes")
    assert "<td>backend</td><td>cloud-llama</td><td>local-gpu</td>" in outcome
    assert "score of cloud-llama" in outcome


def test_a_probe_like_latency_change_shows_under_observed_state_and_no_config_change(
    staff_client, fleet
):
    decision = record("llama3.1:8b")
    scored = decision_view(decision)["annotations"]["score_breakdown"]["cloud-llama"]
    assert scored["latency"] == 0.5  # never probed: neutral
    audit_before = AuditEntry.objects.count()
    # What a probe writes: the probed columns, no audit entry, no config version.
    Backend.objects.filter(name="cloud-llama").update(latency_ema_ms=19.0)
    assert AuditEntry.objects.count() == audit_before

    html = _rerun(staff_client, decision)
    config = _part(html, "config-changes")
    assert "None." in config and 'class="config-change"' not in config
    observed = _part(html, "observed-changes")
    assert (
        '<tr class="observed-change"><td>latency factor of cloud-llama</td>'
        "<td>0.5</td><td>0.981 (latency today 19 ms)</td></tr>"
    ) in observed
    assert "local-gpu" not in observed  # its latency did not move
    assert "score of cloud-llama" in _part(html, "outcome-changes")


def test_a_backend_turning_unhealthy_shows_as_an_observed_health_change(
    staff_client, fleet
):
    decision = record("llama3.1:8b")
    Backend.objects.filter(name="local-gpu").update(health="unhealthy")

    html = _rerun(staff_client, decision)
    assert "None." in _part(html, "config-changes")
    observed = _part(html, "observed-changes")
    assert (
        "<td>health of local-gpu</td><td>a candidate (not unhealthy)</td>"
        "<td>unhealthy</td>"
    ) in observed
    outcome = _part(html, "outcome-changes")
    assert "local-gpu excluded by request_analyzer" in outcome


def test_spend_moving_the_budget_status_shows_as_observed_with_todays_spend(
    staff_client, fleet
):
    set_budget("100")
    decision = record("gpt-4o")
    assert decision.annotations["budget_status"] == "normal"
    Budget.objects.filter(name="global").update(spent_usd=80)

    html = _rerun(staff_client, decision)
    assert "None." in _part(html, "config-changes")
    observed = _part(html, "observed-changes")
    assert (
        "<td>budget status</td><td>normal</td>"
        "<td>soft_limit (global: $80.00 spent of $100.00)</td>"
    ) in observed
    assert "budget status" not in _part(html, "outcome-changes")
