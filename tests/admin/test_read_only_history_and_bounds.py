"""Decisions and ledger entries are history: the admin shows them and changes
nothing. Number inputs in admin forms offer the bounds the model enforces."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from routing.decision_storage import is_compact
from routing.models import LedgerEntry, RoutingDecision
from tests.factories import (
    BackendFactory,
    LedgerEntryFactory,
    RoutingDecisionFactory,
    TrafficPolicyFactory,
    global_budget,
)

pytestmark = pytest.mark.django_db


def history_rows() -> list[tuple[str, Any]]:
    decision = RoutingDecisionFactory()
    entry = LedgerEntryFactory(budget=global_budget(), decision_id=decision.pk)
    return [("routingdecision", decision), ("ledgerentry", entry)]


def test_a_superuser_cannot_delete_decisions_or_ledger_entries_in_the_admin(
    admin_client_as_operator: Any,
) -> None:
    for model, row in history_rows():
        url = reverse(f"admin:routing_{model}_delete", args=[row.pk])
        response = admin_client_as_operator.post(url, {"post": "yes"})
        assert response.status_code == 403, model
        changelist = reverse(f"admin:routing_{model}_changelist")
        response = admin_client_as_operator.post(
            changelist,
            {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
        )
        assert "delete_selected" not in response.content.decode(), model
    assert RoutingDecision.objects.count() == 1
    assert LedgerEntry.objects.count() == 1


def test_a_superuser_sees_decisions_and_ledger_entries_without_save_or_delete(
    admin_client_as_operator: Any,
) -> None:
    for model, row in history_rows():
        url = reverse(f"admin:routing_{model}_change", args=[row.pk])
        response = admin_client_as_operator.get(url)
        html = response.content.decode()
        assert response.status_code == 200, model
        assert 'name="_save"' not in html and 'name="_continue"' not in html
        assert 'class="deletelink"' not in html, model
        add = admin_client_as_operator.get(reverse(f"admin:routing_{model}_add"))
        assert add.status_code == 403, model
        before = admin_client_as_operator.post(url, {"note": "edited"})
        assert before.status_code == 403, model


def number_input(html: str, name: str) -> str:
    match = re.search(rf'<input type="number" name="{name}"[^>]*>', html)
    assert match, name
    return match.group(0)


def test_the_admin_tier_inputs_offer_the_models_bounds_1_to_5(
    admin_client_as_operator: Any,
) -> None:
    box = BackendFactory()
    html = admin_client_as_operator.get(
        reverse("admin:routing_backend_change", args=[box.pk])
    ).content.decode()
    tier = number_input(html, "capability_tier")
    assert 'min="1"' in tier and 'max="5"' in tier
    priority = number_input(html, "priority")
    assert 'min="0"' in priority and 'max="100"' in priority
    listing = admin_client_as_operator.get(
        reverse("admin:routing_backend_changelist")
    ).content.decode()
    tier = number_input(listing, "form-0-capability_tier")
    assert 'min="1"' in tier and 'max="5"' in tier
    policy = TrafficPolicyFactory()
    html = admin_client_as_operator.get(
        reverse("admin:routing_trafficpolicy_change", args=[policy.pk])
    ).content.decode()
    min_tier = number_input(html, "min_tier")
    assert 'min="1"' in min_tier and 'max="5"' in min_tier


def test_a_decisions_admin_page_shows_the_full_trace_not_the_stored_form(
    admin_client_as_operator: Any, api_client: Any
) -> None:
    BackendFactory(name="rack-a")
    routed = api_client.post(
        "/api/v1/route",
        {"model": "missing-model", "messages": [{"role": "user", "content": "hi"}]},
        format="json",
    ).json()
    decision = RoutingDecision.objects.get(pk=routed["decision_id"])
    assert is_compact(decision.trace)
    url = reverse("admin:routing_routingdecision_change", args=[decision.pk])
    html = admin_client_as_operator.get(url).content.decode()
    assert "&quot;candidates_before&quot;" in html  # the expanded trace
    assert "&quot;z&quot;" not in html
