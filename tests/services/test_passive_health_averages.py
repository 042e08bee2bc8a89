"""Successful attempts folded in memory are written as if applied one by one."""

from __future__ import annotations

import pytest

from routing.models import Backend
from routing.services import passive_health
from routing.services.health import _ema
from routing.services.passive_health import backend_attempt_observe
from tests.factories import BackendFactory

pytestmark = pytest.mark.django_db


def test_held_successes_then_a_failure_give_the_one_by_one_averages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passive_health, "AVERAGES_WRITE_INTERVAL_S", 3600.0)
    BackendFactory(name="b", health="healthy", latency_ema_ms=100.0, error_rate=0.5)
    for ttft in (10.0, 20.0, 30.0, 40.0):
        backend_attempt_observe(backend_name="b", ok=True, ttft_ms=ttft)
    row = Backend.objects.get(name="b")
    assert row.latency_ema_ms == pytest.approx(_ema(100.0, 10.0))  # 3 held back
    backend_attempt_observe(backend_name="b", ok=False)
    row.refresh_from_db()
    latency, errors = 100.0, 0.5
    for ttft in (10.0, 20.0, 30.0, 40.0):
        latency, errors = _ema(latency, ttft), _ema(errors, 0.0)
    assert row.latency_ema_ms == pytest.approx(latency)
    assert row.error_rate == pytest.approx(_ema(errors, 1.0))
    assert row.consecutive_failures == 1


def test_a_first_latency_is_seeded_from_the_held_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passive_health, "AVERAGES_WRITE_INTERVAL_S", 3600.0)
    BackendFactory(name="b", health="healthy", latency_ema_ms=None, error_rate=0.0)
    backend_attempt_observe(backend_name="b", ok=True, ttft_ms=None)
    for ttft in (10.0, 20.0):
        backend_attempt_observe(backend_name="b", ok=True, ttft_ms=ttft)
    backend_attempt_observe(backend_name="b", ok=False)
    row = Backend.objects.get(name="b")
    assert row.latency_ema_ms == pytest.approx(_ema(_ema(None, 10.0), 20.0))
