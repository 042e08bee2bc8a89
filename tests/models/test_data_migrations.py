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


def test_the_operators_and_admins_groups_exist_after_migrate() -> None:
    from django.contrib.auth.models import Group

    def perms(name: str) -> set[str]:
        return {
            f"{app}.{code}"
            for app, code in Group.objects.get(name=name).permissions.values_list(
                "content_type__app_label", "codename"
            )
        }

    operators, admins = perms("operators"), perms("admins")
    assert "routing.operate_backend" in operators
    assert {"routing.view_budget", "routing.view_routingdecision"} <= operators
    assert (
        not {
            "routing.change_budget",
            "routing.add_backend",
            "routing.change_backend",
        }
        & operators
    )
    assert {
        "routing.add_budget",
        "routing.change_budget",
        "routing.delete_privacyzone",
        "routing.view_apikey",
        "auth.view_user",
        "routing.operate_backend",
    } <= admins
    # Every routing model, every action.
    from django.apps import apps

    models = apps.get_app_config("routing").get_models()
    assert {
        f"routing.{action}_{m._meta.model_name}"
        for m in models
        for action in ("add", "change", "delete", "view")
    } <= admins


def test_creating_the_groups_again_changes_nothing() -> None:
    from importlib import import_module

    from django.apps import apps
    from django.contrib.auth.models import Group, Permission

    before = sorted(Group.objects.values_list("name", "permissions"))
    count = Permission.objects.count()
    migration = import_module("routing.migrations.0007_operators_and_admins_groups")
    migration.create_groups(apps, None)
    assert sorted(Group.objects.values_list("name", "permissions")) == before
    assert Permission.objects.count() == count


def test_decisions_of_the_earlier_sample_generator_are_marked_as_samples() -> None:
    import importlib

    from django.apps import apps

    from routing.models import RoutingDecision
    from routing.services.api_keys import api_key_issue
    from tests.factories import RoutingDecisionFactory

    migration = importlib.import_module("routing.migrations.0016_decision_sample")
    key, _ = api_key_issue(name="sample")
    earlier = RoutingDecisionFactory(client="sample", api_key=None)
    by_user = RoutingDecisionFactory(client="user:sample", api_key=None)
    by_key = RoutingDecisionFactory(client="sample", api_key=key)

    migration.mark_earlier_samples(apps, None)

    marked = set(
        RoutingDecision.objects.filter(sample=True).values_list("pk", flat=True)
    )
    assert marked == {earlier.pk}
    assert by_user.pk not in marked and by_key.pk not in marked
