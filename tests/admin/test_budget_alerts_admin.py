"""Budget alerts are history: the admin lists them and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from routing.models import BudgetAlert
from routing.services.alerts import budget_alerts_check
from tests.budget_alerts import alerting_budget

pytestmark = pytest.mark.django_db


def test_a_superuser_sees_alerts_in_the_admin_but_cannot_change_them(
    admin_client_as_operator: Any,
) -> None:
    alerting_budget(name="team-a", thresholds=[80], spent="90")
    [alert] = budget_alerts_check()
    changelist = admin_client_as_operator.get(
        reverse("admin:routing_budgetalert_changelist")
    )
    assert changelist.status_code == 200
    page = changelist.content.decode()
    assert "team-a" in page and "logged (no webhook)" in page and "$90" in page
    assert "/admin/routing/budgetalert/add/" not in page
    detail = admin_client_as_operator.get(
        reverse("admin:routing_budgetalert_change", args=[alert.pk])
    )
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    deleted = admin_client_as_operator.post(
        reverse("admin:routing_budgetalert_delete", args=[alert.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 403
    assert BudgetAlert.objects.count() == 1
