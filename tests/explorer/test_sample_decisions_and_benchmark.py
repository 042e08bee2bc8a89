"""The sample generator writes rows the explorer shows; the benchmark prints figures."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from routing.models import DecisionExclusion, RoutingDecision

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def demo_fleet():
    from routing.services.demo import demo_fleet_load

    demo_fleet_load()


def test_generate_decisions_writes_a_mix_of_outcomes_and_exclusions():
    out = StringIO()
    call_command("generate_decisions", "600", "--batch-size", "250", stdout=out)
    assert RoutingDecision.objects.count() == 600
    outcomes = set(RoutingDecision.objects.values_list("outcome", flat=True))
    assert {"route", "reject"} <= outcomes
    reconcilers = set(DecisionExclusion.objects.values_list("reconciler", flat=True))
    assert {"privacy", "capability"} <= reconcilers
    assert "Wrote 600 sample decisions" in out.getvalue()


def test_the_generated_rows_render_in_the_explorer(staff_client):
    call_command("generate_decisions", "120", stdout=StringIO())
    rejected = RoutingDecision.objects.filter(outcome="reject").first()
    response = staff_client.get(f"/decisions/{rejected.id}/")
    assert response.status_code == 200
    assert 'class="exclusion"' in response.content.decode()


def test_bench_explorer_prints_median_and_p99_per_page():
    call_command("generate_decisions", "200", stdout=StringIO())
    out = StringIO()
    call_command("bench_explorer", "--runs", "3", "--warmup", "1", stdout=out)
    text = out.getvalue()
    assert "decisions page (newest 50)" in text
    assert "excluded_by=capability" in text
    assert "sample=true (samples only)" in text
    assert "deep cursor page (mid-history)" in text
    assert "decision detail page (mid-history)" in text
    assert "API: excluded_by=capability" in text
    assert "API: deep cursor page (mid-history)" in text
    assert "worst p99 of the pages" in text
    assert "worst p99 of the API list" in text
