"""generate_decisions routes synthetic requests on today's fleet: every sample agrees
with it, is marked sample, and nothing is reserved, booked or counted."""

from __future__ import annotations

from collections import Counter
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from routing.models import (
    Backend,
    Budget,
    DecisionExclusion,
    LedgerEntry,
    RoutingDecision,
    UsageReport,
)
from routing.services.api_keys import api_key_issue
from routing.services.config import config_version_current
from routing.services.decision_samples import UNKNOWN_MODELS
from routing.services.decision_templates import decision_view
from routing.services.demo import ALIASES, demo_fleet_load
from routing.shared_counters import SharedCounterStore

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_fleet() -> dict[str, Backend]:
    """The demo fleet, two API keys, and a budget that has spent something."""
    demo_fleet_load()
    api_key_issue(name="web-app", is_admin=False)
    api_key_issue(name="batch-jobs", is_admin=False)
    Budget.objects.filter(name="global").update(spent_usd=12, reserved_usd=3)
    return {
        b.name: b
        for b in Backend.objects.select_related("privacy_zone").prefetch_related(
            "models"
        )
    }


def generate(count: int, *extra: str) -> str:
    out = StringIO()
    call_command("generate_decisions", str(count), *extra, stdout=out)
    return out.getvalue()


def test_every_routed_sample_names_a_backend_of_the_fleet_as_it_is(
    demo_fleet: dict[str, Backend],
) -> None:
    generate(800, "--batch-size", "300")
    routed = RoutingDecision.objects.exclude(outcome="reject")
    assert routed.count() > 300
    for decision in routed:
        backend = demo_fleet[decision.backend_name]
        shown = decision_view(decision)["details"]["backend"]
        assert shown["privacy_zone"] == backend.privacy_zone.name
        assert shown["capability_tier"] == backend.capability_tier
        assert decision.model in {offer.name for offer in backend.models.all()}


def test_samples_name_only_backends_models_and_the_config_version_that_exist(
    demo_fleet: dict[str, Backend],
) -> None:
    generate(600)
    served = {o.name for b in demo_fleet.values() for o in b.models.all()}
    asked = served | set(ALIASES) | set(UNKNOWN_MODELS)
    versions = set(RoutingDecision.objects.values_list("config_version", flat=True))
    assert versions == {config_version_current()}
    for decision in RoutingDecision.objects.all():
        assert decision.requested_model in asked
        for entry in decision_view(decision)["trace"]:
            named = {*entry["candidates_before"], *entry["candidates_after"]}
            named |= {e["backend"] for e in entry["excluded"]}
            assert named <= set(demo_fleet), entry


def test_samples_vary_like_real_traffic(demo_fleet: dict[str, Backend]) -> None:
    generate(1500)
    rows = list(RoutingDecision.objects.all())
    assert {d.outcome for d in rows} >= {"route", "reject"}
    assert {d.error_type for d in rows} >= {"model_not_found", "no_viable_backend"}
    assert {d.requested_model for d in rows} & set(ALIASES)
    privacy = {decision_view(d)["constraints"]["privacy"]["value"] for d in rows}
    assert "restricted" in privacy and any(p.startswith("zone:") for p in privacy)
    assert {decision_view(d)["constraints"]["min_tier"]["value"] for d in rows} - {None}
    for need in ("vision", "tools", "json_mode"):
        assert any(decision_view(d)["requirements"][need] for d in rows), need
    sizes = {decision_view(d)["requirements"]["estimated_input_tokens"] for d in rows}
    assert min(sizes) < 300 and max(sizes) > 10_000
    assert {d.client for d in rows} >= {"web-app", "batch-jobs"}
    stamps = sorted(d.created_at for d in rows)
    assert (stamps[-1] - stamps[0]).days >= 28


def test_exclusion_rows_match_each_samples_trace(
    demo_fleet: dict[str, Backend],
) -> None:
    generate(500)
    stored: dict[Any, Counter[str]] = {}
    for row in DecisionExclusion.objects.select_related("decision"):
        stored.setdefault(row.decision_id, Counter())[row.reconciler] = (
            row.excluded_count
        )
        assert row.created_at == row.decision.created_at
    assert stored
    for decision in RoutingDecision.objects.all():
        expected: Counter[str] = Counter()
        for entry in decision_view(decision)["trace"]:
            if entry["excluded"]:
                expected[entry["reconciler"]] += len(entry["excluded"])
        assert stored.get(decision.pk, Counter()) == expected


def test_every_generated_decision_is_marked_sample_and_real_ones_are_not(
    demo_fleet: dict[str, Backend],
) -> None:
    from tests.explorer.conftest import record

    real = record("llama3.1:8b")
    generate(200)
    assert RoutingDecision.objects.filter(sample=True).count() == 200
    assert list(RoutingDecision.objects.filter(sample=False)) == [real]


def test_nothing_is_reserved_booked_or_counted(
    demo_fleet: dict[str, Backend], settings: Any
) -> None:
    from routing.adapters import shared_pipeline_reset

    settings.NEXUS_SELECTION_STRATEGY = "round_robin"
    shared_pipeline_reset()
    before = list(Budget.objects.values_list("name", "spent_usd", "reserved_usd"))
    try:
        generate(400)
    finally:
        shared_pipeline_reset()
    assert RoutingDecision.objects.filter(outcome="route").exists()
    assert list(Budget.objects.values_list("name", "spent_usd", "reserved_usd")) == (
        before
    )
    assert not LedgerEntry.objects.exists()
    assert not UsageReport.objects.exists()
    # The shared round-robin rotation has not moved: its first turn is still 0.
    assert SharedCounterStore().next("llama3.1:8b") == 0


def test_the_same_seed_sends_the_same_requests(demo_fleet: dict[str, Backend]) -> None:
    def requests() -> list[tuple[Any, ...]]:
        return list(
            RoutingDecision.objects.order_by("created_at").values_list(
                "request_id", "requested_model", "outcome", "backend_name"
            )
        )

    generate(150, "--seed", "7")
    first = requests()
    RoutingDecision.objects.all().delete()
    generate(150, "--seed", "7")
    assert requests() == first


def test_routing_every_request_gives_samples_of_the_same_kind(
    demo_fleet: dict[str, Backend],
) -> None:
    text = generate(120, "--route-every")
    assert "120 pipeline runs" in text
    assert RoutingDecision.objects.filter(sample=True).count() == 120


def test_without_a_fleet_it_says_to_load_one_first() -> None:
    with pytest.raises(CommandError, match="load_demo"):
        generate(10)
    assert not RoutingDecision.objects.exists()
