"""The sample generator writes realistic rows; the benchmark command prints figures."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from routing.models import DecisionExclusion, RoutingDecision

pytestmark = pytest.mark.django_db


def test_generate_decisions_writes_a_mix_of_outcomes_and_exclusions():
    out = StringIO()
    call_command("generate_decisions", "600", "--batch-size", "250", stdout=out)
    assert RoutingDecision.objects.count() == 600
    outcomes = set(RoutingDecision.objects.values_list("outcome", flat=True))
    assert outcomes == {"route", "queue", "reject"}
    reconcilers = set(DecisionExclusion.objects.values_list("reconciler", flat=True))
    assert {"privacy", "budget", "capability"} <= reconcilers
    assert "Wrote 600 decisions" in out.getvalue()


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
    assert "worst p99" in text
