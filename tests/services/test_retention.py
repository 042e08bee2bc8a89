"""Retention deletes old decisions in batches and keeps recent ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from routing.models import DecisionExclusion, RoutingDecision
from routing.services.retention import decision_prune_expired
from tests.factories import RoutingDecisionFactory

pytestmark = pytest.mark.django_db


def decisions_aged(days: float, count: int = 1) -> list[RoutingDecision]:
    created_at = timezone.now() - timedelta(days=days)
    return RoutingDecisionFactory.create_batch(count, created_at=created_at)


def test_decisions_older_than_the_retention_period_are_deleted_with_their_exclusions(
    settings,
) -> None:  # type: ignore[no-untyped-def]
    settings.NEXUS_DECISION_RETENTION_DAYS = 30
    [old] = decisions_aged(31)
    [recent] = decisions_aged(29)
    for decision in (old, recent):
        DecisionExclusion.objects.create(
            decision=decision,
            reconciler="privacy",
            excluded_count=1,
            created_at=decision.created_at,
        )
    result = decision_prune_expired()
    assert (result.deleted, result.finished) == (1, True)
    assert list(RoutingDecision.objects.all()) == [recent]
    assert list(DecisionExclusion.objects.values_list("decision_id", flat=True)) == [
        recent.pk
    ]


def test_many_old_decisions_go_in_several_small_batches() -> None:
    decisions_aged(100, count=7)
    result = decision_prune_expired(retention_days=90, batch_size=3)
    assert (result.deleted, result.finished) == (7, True)
    assert not RoutingDecision.objects.exists()


def test_a_spent_time_budget_stops_after_one_batch_and_the_next_run_continues() -> None:
    decisions_aged(100, count=5)
    first = decision_prune_expired(retention_days=90, batch_size=3, time_budget_s=0)
    assert (first.deleted, first.finished) == (3, False)
    second = decision_prune_expired(retention_days=90, batch_size=3, time_budget_s=0)
    assert (second.deleted, second.finished) == (2, True)


def test_pruning_when_nothing_is_old_deletes_nothing() -> None:
    decisions_aged(1, count=2)
    assert decision_prune_expired(retention_days=90).deleted == 0
    assert RoutingDecision.objects.count() == 2
