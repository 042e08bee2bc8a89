"""A freshly migrated database has the standard zones, the global budget and a version."""

from __future__ import annotations

import pytest

from routing.models import Budget, ConfigVersion, PrivacyZone
from routing.pipeline.types import BudgetStatus, HardLimitAction

pytestmark = pytest.mark.django_db


def test_local_zone_is_private_and_cloud_zone_is_not() -> None:
    zones = dict(PrivacyZone.objects.values_list("name", "private"))
    assert zones == {"local": True, "cloud": False}


def test_global_budget_exists_disabled_with_contract_defaults() -> None:
    budget = Budget.objects.get(name="global")
    assert budget.monthly_limit_usd is None
    assert not budget.enabled
    assert budget.status is BudgetStatus.NORMAL
    assert budget.soft_limit_percent == 75
    assert budget.hard_limit_action == HardLimitAction.BLOCK_CLOUD
    assert budget.reset_day == 1


def test_config_version_starts_at_one() -> None:
    assert ConfigVersion.objects.get(pk=1).version == 1
