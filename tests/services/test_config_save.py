"""Configuration writes are audited field by field and bump the config version."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from routing.models import AuditEntry, Backend, Budget, PrivacyZone
from routing.services.config import config_delete, config_save, config_version_current
from tests.factories import cloud_zone, local_zone

pytestmark = pytest.mark.django_db


def new_backend() -> Backend:
    return Backend(
        name="gpu-box",
        kind="vllm",
        base_url="http://127.0.0.1:8001",
        privacy_zone=local_zone(),
    )


def test_creating_a_backend_audits_its_fields_and_bumps_the_version() -> None:
    start = config_version_current()
    entries = config_save(instance=new_backend(), actor="olivia")
    assert config_version_current() == start + 1
    by_field = {entry.field: entry for entry in entries}
    assert by_field["privacy_zone"].new_value == "local"
    assert by_field["capability_tier"].new_value == "1"
    assert {entry.action for entry in entries} == {"create"}
    assert {entry.actor for entry in entries} == {"olivia"}
    assert {entry.config_version for entry in entries} == {start + 1}


def test_changing_zone_and_tier_writes_one_entry_per_changed_field() -> None:
    box = new_backend()
    config_save(instance=box, actor="olivia")
    version = config_version_current()
    box.privacy_zone = cloud_zone()
    box.capability_tier = 4
    entries = config_save(instance=box, actor="sam")
    changes = {(e.field, e.old_value, e.new_value) for e in entries}
    assert changes == {
        ("privacy_zone", "local", "cloud"),
        ("capability_tier", "1", "4"),
    }
    assert config_version_current() == version + 1


def test_saving_without_changes_writes_nothing_and_keeps_the_version() -> None:
    box = new_backend()
    config_save(instance=box, actor="olivia")
    version = config_version_current()
    count = AuditEntry.objects.count()
    assert config_save(instance=Backend.objects.get(pk=box.pk), actor="olivia") == []
    assert config_version_current() == version
    assert AuditEntry.objects.count() == count


def test_an_invalid_change_is_refused_and_leaves_no_trace() -> None:
    box = new_backend()
    config_save(instance=box, actor="olivia")
    version, count = config_version_current(), AuditEntry.objects.count()
    box.capability_tier = 9
    with pytest.raises(ValidationError):
        config_save(instance=box, actor="olivia")
    assert Backend.objects.get(pk=box.pk).capability_tier == 1
    assert (config_version_current(), AuditEntry.objects.count()) == (version, count)


def test_deleting_audits_the_old_values_and_bumps_the_version() -> None:
    zone = PrivacyZone(name="eu-private", private=True)
    config_save(instance=zone, actor="olivia")
    version = config_version_current()
    entries = config_delete(instance=zone, actor="olivia")
    assert {(e.action, e.field, e.old_value) for e in entries} >= {
        ("delete", "name", "eu-private"),
        ("delete", "private", "yes"),
    }
    assert config_version_current() == version + 1
    assert not PrivacyZone.objects.filter(name="eu-private").exists()


def test_a_budget_edit_keeps_the_spend_and_reservations_made_while_it_was_open() -> (
    None
):
    budget = Budget.objects.get(name="global")
    budget.monthly_limit_usd = Decimal("10")
    config_save(instance=budget, actor="test")
    budget = Budget.objects.get(name="global")  # an admin opens the form
    Budget.objects.filter(pk=budget.pk).update(
        spent_usd=Decimal("2"), reserved_usd=Decimal("0.5")
    )  # meanwhile routing reserves and usage settles
    budget.monthly_limit_usd = Decimal("20")
    config_save(instance=budget, actor="test")
    stored = Budget.objects.get(pk=budget.pk)
    assert stored.monthly_limit_usd == Decimal("20")
    assert (stored.spent_usd, stored.reserved_usd) == (Decimal("2"), Decimal("0.5"))
    assert (budget.spent_usd, budget.reserved_usd) == (Decimal("2"), Decimal("0.5"))


@pytest.mark.parametrize("name", ["local", "cloud"])
def test_a_built_in_zone_cannot_be_deleted_or_renamed(name: str) -> None:
    from routing.errors import ConflictError

    backends = Backend.objects.filter(privacy_zone__name=name)
    backends.update(privacy_zone=None)  # not "still in use": built in on its own
    zone = PrivacyZone.objects.get(name=name)
    with pytest.raises(ConflictError, match=f"zone '{name}' is built in"):
        config_delete(instance=zone, actor="olivia")
    zone.name = f"{name}-renamed"
    with pytest.raises(ConflictError, match="cannot be renamed"):
        config_save(instance=zone, actor="olivia")
    assert PrivacyZone.objects.filter(name=name).exists()


def test_the_global_budget_cannot_be_deleted_or_renamed_but_its_limit_can_change() -> (
    None
):
    from routing.errors import ConflictError

    budget = Budget.objects.get(name="global")
    with pytest.raises(ConflictError, match="budget 'global' is built in"):
        config_delete(instance=budget, actor="olivia")
    budget.name = "everything"
    with pytest.raises(ConflictError, match="cannot be renamed"):
        config_save(instance=budget, actor="olivia")
    budget = Budget.objects.get(name="global")
    budget.monthly_limit_usd = Decimal("123.00")
    assert config_save(instance=budget, actor="olivia")
    assert Budget.objects.get(name="global").monthly_limit_usd == Decimal("123.00")


def test_other_zones_can_still_be_renamed_and_deleted() -> None:
    zone = PrivacyZone.objects.create(name="eu-private", private=True)
    zone.name = "eu-onprem"
    config_save(instance=zone, actor="olivia")
    config_delete(instance=zone, actor="olivia")
    assert not PrivacyZone.objects.filter(name__in=["eu-private", "eu-onprem"]).exists()
