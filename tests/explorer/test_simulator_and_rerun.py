"""The simulator and re-runs go through the real pipeline and record nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from routing.models import Backend, LedgerEntry, RoutingDecision
from routing.services.config import config_save
from routing.services.decision_templates import decision_view
from routing.services.explorer import request_from_decision
from tests.explorer.conftest import record
from tests.fleet_rows import add_policy

pytestmark = pytest.mark.django_db

SIM = "explorer:simulate"


def test_the_simulator_shows_the_decision_and_records_nothing(staff_client, fleet):
    from tests.fleet_rows import set_budget

    set_budget("100")
    response = staff_client.get(
        reverse(SIM),
        {
            "model": "gpt-4o",
            "input_tokens": 1000,
            "output_tokens": 200,
            "vision": "on",
            "json_mode": "on",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.strip().startswith('<section id="result">')
    assert "cloud-gpt" in html and "Trace" in html and "Candidate scores" in html
    assert RoutingDecision.objects.count() == 0
    assert LedgerEntry.objects.count() == 0


def test_simulated_constraints_show_as_coming_from_the_request_body(
    staff_client, fleet
):
    html = staff_client.get(
        reverse(SIM),
        {
            "model": "llama3.1:8b",
            "input_tokens": 10,
            "output_tokens": 10,
            "privacy": "restricted",
        },
    ).content.decode()
    assert "request body" in html
    assert "cloud-llama" in html and "not private" in html  # excluded, with reason


def test_a_bad_simulation_is_a_400_with_field_errors(staff_client):
    response = staff_client.get(
        reverse(SIM),
        {"model": "gpt-4o", "input_tokens": -5, "output_tokens": 1, "privacy": "zone:"},
    )
    assert response.status_code == 400
    assert "input_tokens" in response.content.decode()


def test_a_rerun_restates_the_request_constraints_but_not_the_policy_ones(fleet):
    add_policy("gpt-tier", "gpt-*", min_tier=5)
    decision = record("gpt-4o", privacy="restricted")
    request = request_from_decision(decision)
    assert str(request.privacy) == "restricted"
    assert request.min_tier is None  # came from policy gpt-tier
    requirements = decision_view(decision)["requirements"]
    assert request.body["max_tokens"] == requirements["estimated_output_tokens"]
    text = request.body["messages"][0]["content"]
    assert len(text) == requirements["estimated_input_tokens"] * 4


def test_a_rerun_after_a_config_change_shows_what_would_change(staff_client, fleet):
    decision = record("gpt-4o")
    assert decision.backend_name == "cloud-gpt"
    backend = Backend.objects.get(name="cloud-gpt")
    backend.enabled = False
    config_save(instance=backend, actor="test")
    count = RoutingDecision.objects.count()

    url = reverse("explorer:decision-rerun", args=[decision.id])
    response = staff_client.get(url, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith('<section id="rerun">')
    assert 'class="change"' in html
    assert "outcome" in html and "reject" in html
    assert RoutingDecision.objects.count() == count  # nothing recorded


def test_the_detail_lists_the_config_edits_made_since_the_decision(staff_client, fleet):
    decision = record("gpt-4o")
    page = staff_client.get(reverse("explorer:decision", args=[decision.id]))
    assert "None: today" in page.content.decode()
    add_policy("later-policy", "gpt-*", min_tier=2)
    html = staff_client.get(
        reverse("explorer:decision", args=[decision.id])
    ).content.decode()
    assert "later-policy" in html and "Re-run against today" in html


def test_a_rejected_decision_shows_every_exclusion_with_reason_and_action(
    staff_client, fleet
):
    decision = record("llama3.1:8b", privacy="zone:nowhere")
    assert decision.outcome == "reject"
    html = staff_client.get(
        reverse("explorer:decision", args=[decision.id])
    ).content.decode()
    for name in ("local-gpu", "cloud-llama"):
        assert f'<tr class="exclusion"><td>{name}</td>' in html
    assert "Suggested action" in html and "request header" in html
