"""Budgets in the admin: scope, thresholds and webhook are editable; a bad scope
is shown on the scope field (never a 500); saves are audited."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from routing.models import AuditEntry, Budget

pytestmark = pytest.mark.django_db


def budget_form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "cloud",
        "monthly_limit_usd": "500",
        "soft_limit_percent": "75",
        "hard_limit_action": "block_cloud",
        "reset_day": "1",
        "scope": json.dumps({"zones": ["cloud"]}),
        "alert_thresholds": "[80, 100]",
        "alert_webhook_url": "https://hooks.example.com/nexus",
    }
    data.update(overrides)
    return data


def test_the_admin_creates_a_scoped_budget_with_thresholds_and_webhook(
    admin_client_as_operator: Any,
) -> None:
    response = admin_client_as_operator.post(
        reverse("admin:routing_budget_add"), budget_form()
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    budget = Budget.objects.get(name="cloud")
    assert budget.scope == {"zones": ["cloud"]}
    assert budget.alert_thresholds == [80, 100]
    assert budget.alert_webhook_url == "https://hooks.example.com/nexus"
    assert AuditEntry.objects.filter(object_name="cloud", field="scope").exists()


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"zones": ["mars"]}, "zones: Unknown zone(s) &#x27;mars&#x27;"),
        ({"models": ["gpt-[4"]}, "models: "),
        ({"colours": ["blue"]}, "Unknown scope field(s)"),
        (["cloud"], "Scope must be an object"),
    ],
)
def test_a_bad_scope_is_an_error_on_the_scope_field_not_a_500(
    admin_client_as_operator: Any, scope: Any, message: str
) -> None:
    response = admin_client_as_operator.post(
        reverse("admin:routing_budget_add"), budget_form(scope=json.dumps(scope))
    )
    assert response.status_code == 200
    html = response.content.decode()
    row = html[html.index("field-scope") :]
    row = row[: row.index("field-alert_thresholds")]
    assert "errorlist" in row and message in row, row
    assert not Budget.objects.filter(name="cloud").exists()


def test_bad_thresholds_are_an_error_on_their_field(
    admin_client_as_operator: Any,
) -> None:
    response = admin_client_as_operator.post(
        reverse("admin:routing_budget_add"), budget_form(alert_thresholds="[0, 80]")
    )
    assert response.status_code == 200
    html = response.content.decode()
    row = html[html.index("field-alert_thresholds") :]
    assert "between 1 and 1000" in row[: row.index("field-alert_webhook_url")]


def test_the_change_page_shows_scope_alerts_and_this_periods_figures(
    admin_client_as_operator: Any,
) -> None:
    budget = Budget.objects.get(name="global")
    url = reverse("admin:routing_budget_change", args=[budget.pk])
    html = admin_client_as_operator.get(url).content.decode()
    for field in ("scope", "alert_thresholds", "alert_webhook_url"):
        assert f'name="{field}"' in html
    assert "What it governs" in html and "spent_usd" in html
