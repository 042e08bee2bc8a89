"""Half-opening a circuit is a compare-and-set: one trial however many processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from routing.models import Backend
from routing.services import passive_health
from routing.services.passive_health import HALF_OPEN, circuits_half_open, trial_take
from tests.factories import BackendFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _check_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call looks at the database (no wait since this process's last look)."""
    monkeypatch.setattr(passive_health, "_next_reopen_check", 0.0)
    monkeypatch.setattr(passive_health, "REOPEN_CHECK_INTERVAL_S", 0.0)


def _open_circuit(name: str, *, ended_ago_s: float) -> None:
    BackendFactory(
        name=name,
        health="unhealthy",
        health_reason="circuit open after 3 failed requests in a row",
        unhealthy_until=timezone.now() - timedelta(seconds=ended_ago_s),
        consecutive_failures=3,
    )


def test_a_circuit_whose_cool_down_ended_half_opens_with_one_trial() -> None:
    _open_circuit("b", ended_ago_s=1)
    _open_circuit("still-cooling", ended_ago_s=-60)
    assert circuits_half_open() == 1
    row = Backend.objects.get(name="b")
    assert (row.health, row.health_reason, row.consecutive_failures) == (
        "unknown",
        HALF_OPEN,
        0,
    )
    assert Backend.objects.get(name="still-cooling").health == "unhealthy"
    assert [trial_take("b") for _ in range(3)] == [True, False, False]
    assert circuits_half_open() == 0  # nothing left to half-open


def test_a_process_that_saw_the_circuit_due_too_late_lets_no_second_trial_through() -> (
    None
):
    _open_circuit("b", ended_ago_s=1)
    now = timezone.now()
    assert circuits_half_open(now=now) == 1  # this process won
    assert trial_take("b") is True
    # Another process read "b" as due before the update above, and gets to it now.
    assert passive_health._half_open("b", now) is False
    assert trial_take("b") is False
    assert Backend.objects.get(name="b").health_reason == HALF_OPEN
