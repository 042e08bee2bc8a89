"""The demo fleet loads into an empty database and loading it again changes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from routing.models import (
    Alias,
    AuditEntry,
    Backend,
    BackendModel,
    Budget,
    TrafficPolicy,
)
from routing.services.config import config_version_current

pytestmark = pytest.mark.django_db


def load() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_demo_fleet_has_local_and_cloud_backends_with_prices() -> None:
    assert "5 backends" in load()
    zones = dict(Backend.objects.values_list("name", "privacy_zone__name"))
    assert sorted(zones.values()).count("local") == 3
    assert sorted(zones.values()).count("cloud") == 2
    gpt = BackendModel.objects.get(backend__name="openai", name="gpt-4o")
    assert gpt.input_cost_per_1k > 0 and gpt.output_cost_per_1k > 0
    assert not BackendModel.objects.filter(
        backend__privacy_zone__name="local", input_cost_per_1k__gt=0
    ).exists()
    assert (
        TrafficPolicy.objects.get(name="internal-stays-local").privacy == "restricted"
    )
    assert TrafficPolicy.objects.filter(min_tier__isnull=False).exists()
    assert Budget.objects.get(name="global").enabled


def test_loading_twice_changes_nothing_the_second_time() -> None:
    load()
    counts = (
        Backend.objects.count(),
        BackendModel.objects.count(),
        Alias.objects.count(),
        AuditEntry.objects.count(),
    )
    version = config_version_current()
    load()
    assert (
        Backend.objects.count(),
        BackendModel.objects.count(),
        Alias.objects.count(),
        AuditEntry.objects.count(),
    ) == counts
    assert config_version_current() == version


def test_demo_credentials_are_stable_across_runs(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.DATA_DIR = tmp_path
    first, second = StringIO(), StringIO()
    call_command("demo_credentials", stdout=first)
    call_command("demo_credentials", stdout=second)
    assert first.getvalue() == second.getvalue()
    assert "Login:   operator / " in first.getvalue()
    assert (tmp_path / "demo-credentials.json").stat().st_mode & 0o077 == 0


def test_the_demo_login_is_in_the_admins_group(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    settings.DATA_DIR = tmp_path
    call_command("demo_credentials", stdout=StringIO())
    user = get_user_model().objects.get(username="operator")
    assert list(user.groups.values_list("name", flat=True)) == ["admins"]
    assert user.has_perm("routing.change_budget")


def test_the_demo_has_a_cloud_budget_a_team_budget_and_traffic_with_usage() -> None:
    from routing.models import LedgerEntry, RoutingDecision, UsageReport

    output = load()
    assert "demo requests with usage" in output
    cloud, team = Budget.objects.get(name="cloud"), Budget.objects.get(name="demo-team")
    assert cloud.scope == {"zones": ["cloud"]} and cloud.enabled
    assert team.scope == {"clients": ["demo-client", "operator"]}
    routed = RoutingDecision.objects.filter(
        request_id__startswith="demo-traffic-", outcome="route"
    )
    assert routed.filter(backend_name="openai").exists()
    usage = UsageReport.objects.filter(decision_id__in=routed.values("id"))
    assert usage.count() == routed.count()
    days = {report.created_at.date() for report in usage}
    global_budget = Budget.objects.get(name="global")
    assert len(days) == min(14, (max(days) - global_budget.period_start).days + 1)
    # Real cost differs from the estimate, and every budget booked what it governs.
    assert any(
        report.cost_usd
        != RoutingDecision.objects.get(pk=report.decision_id).estimated_cost_usd
        for report in usage
    )
    for budget in (global_budget, cloud, team):
        budget.refresh_from_db()
        booked = sum(
            LedgerEntry.objects.filter(
                budget=budget, kind="spend", period_start=budget.period_start
            ).values_list("amount_usd", flat=True)
        )
        assert budget.spent_usd == booked > 0
    assert team.spent_usd < global_budget.spent_usd  # nightly-batch is not the team
    count = RoutingDecision.objects.count()
    assert "demo requests" not in load()  # once only
    assert RoutingDecision.objects.count() == count
