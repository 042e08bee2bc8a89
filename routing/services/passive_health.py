"""What Nexus learns from real upstream attempts (the proxy's loop).

- **In-flight load**: a gauge per backend in the shared state (Redis, or the
  embedded file shared by one machine's processes), up while a proxied request
  is in flight to it, down when it ends however it ends. Routing reads them all
  at once and the load scorer adds them to ``pending_requests``.
- **Latency and errors**: ``latency_ema_ms`` (time to first byte) and
  ``error_rate`` move with each attempt, as they do with each probe.
- **Passive health**: ``NEXUS_PROXY_FAILURES_TO_OPEN`` failed attempts in a row
  open the circuit: the backend is ``unhealthy`` with a ``health_reason`` until
  ``unhealthy_until`` (``NEXUS_PROXY_COOLDOWN_S`` later). After that the next
  routing call half-opens it (health ``unknown``); one request is let through
  (``trial_take``) and its success makes it ``healthy``, its failure opens the
  circuit again. An upstream's 429 with ``Retry-After`` keeps the backend out of
  selection for that long the same way.

Health changes bump the probed-state version, so every process routes on them
from its next request, as with probe results. Moving averages alone bump it at
most once a second per process.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from routing.models import Backend
from routing.pipeline.types import Health
from routing.services.health import _ema, _state_version_bump
from routing.shared_state import shared_state

logger = logging.getLogger(__name__)

IN_FLIGHT = "inflight:"
TRIAL = "trial:"
HALF_OPEN = "half-open: one trial request after an open circuit"
#: Moving averages alone bump the state version at most this often per process.
AVERAGES_BUMP_INTERVAL_S = 1.0
#: How often a process looks for circuits whose cool-down has ended.
REOPEN_CHECK_INTERVAL_S = 0.5

_last_averages_bump = 0.0
_next_reopen_check = 0.0


def in_flight_counts() -> dict[str, int]:
    """Backend name -> proxied requests in flight to it now (every process)."""
    return shared_state().gauges(IN_FLIGHT)


def in_flight_add(backend: str, delta: int) -> int:
    """Count one request more (+1) or less (-1) in flight to ``backend``."""
    return shared_state().add(IN_FLIGHT + backend, delta)


def trial_take(backend: str) -> bool:
    """True for the one request allowed through a half-open circuit."""
    window = max(1, int(settings.NEXUS_PROXY_COOLDOWN_S + 0.999))
    return shared_state().hit(TRIAL + backend, window_seconds=window).count == 1


def _until_text(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S UTC")


@transaction.atomic
def backend_attempt_observe(
    *,
    backend_name: str,
    ok: bool,
    ttft_ms: float | None = None,
    retry_after_s: float | None = None,
    now: datetime | None = None,
) -> None:
    """Fold one upstream attempt into the backend's averages and health.

    ``ok`` False is a failed attempt (refused, timed out, 5xx, 408, 429, cut);
    ``retry_after_s`` is a 429's ``Retry-After``.
    """
    global _last_averages_bump
    backend = Backend.objects.select_for_update().filter(name=backend_name).first()
    if backend is None:
        return
    now = now or timezone.now()
    values: dict[str, object] = {}
    if ok:
        values["consecutive_failures"] = 0
        values["error_rate"] = max(0.0, _ema(backend.error_rate, 0.0))
        if ttft_ms is not None:
            values["latency_ema_ms"] = _ema(backend.latency_ema_ms, ttft_ms)
        if backend.health != Health.HEALTHY.value and (
            backend.unhealthy_until is None or backend.unhealthy_until <= now
        ):
            values.update(
                health=Health.HEALTHY.value, health_reason="", unhealthy_until=None
            )
    else:
        failures = backend.consecutive_failures + 1
        values["consecutive_failures"] = failures
        values["error_rate"] = min(1.0, _ema(backend.error_rate, 1.0))
        open_until = None
        if retry_after_s is not None and retry_after_s > 0:
            open_until = now + timedelta(seconds=retry_after_s)
            reason = (
                f"the upstream answered 429; Retry-After {retry_after_s:g} s, "
                f"until {_until_text(open_until)}"
            )
        elif (
            failures >= settings.NEXUS_PROXY_FAILURES_TO_OPEN
            or backend.health_reason == HALF_OPEN
        ):
            open_until = now + timedelta(seconds=settings.NEXUS_PROXY_COOLDOWN_S)
            reason = (
                f"circuit open after {failures} failed request"
                f"{'s' if failures != 1 else ''} in a row; one trial request "
                f"after {_until_text(open_until)}"
            )
        if open_until is not None and (
            backend.unhealthy_until is None or open_until > backend.unhealthy_until
        ):
            values.update(
                health=Health.UNHEALTHY.value,
                health_reason=reason,
                unhealthy_until=open_until,
                loading_eta_ms=None,
            )
    Backend.objects.filter(pk=backend.pk).update(**values)
    health_changed = "health" in values and (
        values["health"],
        values.get("health_reason"),
    ) != (backend.health, backend.health_reason)
    if health_changed:
        logger.info(
            "Backend %s is now %s (was %s)%s",
            backend.name,
            values["health"],
            backend.health,
            f": {values['health_reason']}" if values.get("health_reason") else "",
        )
    clock = time.monotonic()
    if health_changed or clock - _last_averages_bump >= AVERAGES_BUMP_INTERVAL_S:
        _last_averages_bump = clock
        _state_version_bump()


def circuits_half_open(*, now: datetime | None = None) -> int:
    """Half-open every circuit whose cool-down has ended; how many.

    Cheap to call on every request: it looks at the database at most every
    ``REOPEN_CHECK_INTERVAL_S`` per process.
    """
    global _next_reopen_check
    clock = time.monotonic()
    if clock < _next_reopen_check:
        return 0
    _next_reopen_check = clock + REOPEN_CHECK_INTERVAL_S
    now = now or timezone.now()
    due = Backend.objects.filter(
        health=Health.UNHEALTHY.value, unhealthy_until__lte=now
    )
    if not due.exists():
        return 0
    with transaction.atomic():
        names = list(due.select_for_update().values_list("name", flat=True))
        count = Backend.objects.filter(name__in=names).update(
            health=Health.UNKNOWN.value,
            health_reason=HALF_OPEN,
            unhealthy_until=None,
            consecutive_failures=0,
        )
        if count:
            for name in names:
                shared_state().reset(TRIAL + name)
            _state_version_bump()
            logger.info("Circuit half-open for %s", ", ".join(names))
    return count
