"""What Nexus learns from real upstream attempts (the proxy's loop).

- **In-flight load**: a lease per proxied attempt in the shared state (Redis,
  or the embedded file shared by one machine's processes), taken when it
  starts and released when it ends however it ends (or expiring, should the
  process die); plus a lease per decision routed through ``/api/v1/route``,
  held until its usage is reported or its reservation's time runs out. Routing reads them all at once and the
  load scorer adds them to ``pending_requests``.
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
import math
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, FloatField, Value
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from routing.models import Backend
from routing.pipeline.types import Health
from routing.services.health import EMA_ALPHA, _state_version_bump
from routing.shared_state import shared_state

logger = logging.getLogger(__name__)

IN_FLIGHT = "inflight:"
ROUTED = "routed:"
TRIAL = "trial:"
HALF_OPEN = "half-open: one trial request after an open circuit"
#: How often a process looks for circuits whose cool-down has ended.
REOPEN_CHECK_INTERVAL_S = 0.5

_next_reopen_check = 0.0


#: A process reads the shared counts at most this often; between reads it
#: applies its own changes to what it read (other processes' changes show up
#: at most this late).
IN_FLIGHT_READ_INTERVAL_S = 0.05

_read: tuple[float, dict[str, int]] | None = None
_read_lock = threading.Lock()


def in_flight_counts() -> dict[str, int]:
    """Backend name -> requests in flight to it now (every process): proxied
    ones, plus decisions routed through ``/api/v1/route`` whose usage has not
    been reported and whose reservation has not expired."""
    global _read
    now = time.monotonic()
    read = _read
    if read is not None and now - read[0] < IN_FLIGHT_READ_INTERVAL_S:
        return {name: count for name, count in read[1].items() if count > 0}
    store = shared_state()
    counts = store.leases(IN_FLIGHT)
    for backend, routed in store.leases(ROUTED).items():
        counts[backend] = counts.get(backend, 0) + routed
    _read = (now, counts)
    return dict(counts)


def _seen_locally(backend: str, delta: int) -> None:
    """Apply this process's own change to the counts it read last."""
    with _read_lock:
        read = _read
        if read is not None:
            read[1][backend] = max(read[1].get(backend, 0) + delta, 0)


def in_flight_forget() -> None:
    """Read the shared counts afresh next time, and drop successes held in
    memory (tests)."""
    global _read
    _read = None
    with _held_lock:
        _held.clear()
        _written_at.clear()
        _healthy.clear()


def in_flight_start(backend: str, token: str) -> None:
    """Count the proxied attempt ``token`` (unique) in flight to ``backend``.

    A lease, not a counter: if this process dies mid-request, the attempt
    stops counting once ``NEXUS_PROXY_TOTAL_TIMEOUT_S`` (plus a minute) has
    passed, instead of keeping the backend loaded for good.
    """
    shared_state().lease(
        IN_FLIGHT + backend, token, settings.NEXUS_PROXY_TOTAL_TIMEOUT_S + 60
    )
    _seen_locally(backend, 1)


def in_flight_end(backend: str, token: str) -> None:
    """The attempt ``token`` (from ``in_flight_start``) is over."""
    shared_state().release(IN_FLIGHT + backend, token)
    _seen_locally(backend, -1)


def routed_hold(*, backend: str, decision_id: str) -> None:
    """A decision-only route counts as in flight on ``backend`` until its usage
    is reported (``routed_release``) or ``NEXUS_RESERVATION_TTL_SECONDS`` pass."""
    shared_state().lease(
        ROUTED + backend, decision_id, settings.NEXUS_RESERVATION_TTL_SECONDS
    )
    _seen_locally(backend, 1)


def routed_release(*, backend: str, decision_id: str) -> None:
    """The routed decision's usage arrived: no longer in flight."""
    shared_state().release(ROUTED + backend, decision_id)
    _seen_locally(backend, -1)


def trial_take(backend: str) -> bool:
    """True for the one request allowed through a half-open circuit."""
    window = max(1, int(settings.NEXUS_PROXY_COOLDOWN_S + 0.999))
    return shared_state().hit(TRIAL + backend, window_seconds=window).count == 1


def _until_text(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S UTC")


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
    ``retry_after_s`` is a 429's ``Retry-After``. The averages move in one
    UPDATE computed by the database (no row lock held across statements, so
    concurrent attempts never queue on the backend's row); health changes
    take a second, rare UPDATE.
    """
    if ok and not retry_after_s and _held_back(backend_name, ttft_ms):
        return
    ok_samples = _take_held(backend_name, ttft_ms if ok else None, include=ok)
    row = (
        Backend.objects.filter(name=backend_name)
        .values("pk", "health", "health_reason", "unhealthy_until")
        .first()
    )
    if row is None:
        return
    now = now or timezone.now()
    mine = Backend.objects.filter(pk=row["pk"])
    health: dict[str, object] = {}
    if ok_samples.count:
        averages = ok_samples.averages()
        if ok:
            averages["consecutive_failures"] = 0
        mine.update(**averages)
    if ok:
        cooling = row["unhealthy_until"] is not None and row["unhealthy_until"] > now
        if row["health"] != Health.HEALTHY.value and not cooling:
            health = {
                "health": Health.HEALTHY.value,
                "health_reason": "",
                "unhealthy_until": None,
            }
        if row["health"] == Health.HEALTHY.value or health:
            _held_healthy(backend_name)
    else:
        _held_unhealthy(backend_name)
        mine.update(
            consecutive_failures=F("consecutive_failures") + 1,
            error_rate=Least(F("error_rate") * (1 - EMA_ALPHA) + EMA_ALPHA, Value(1.0)),
        )
        failures = mine.values_list("consecutive_failures", flat=True).first() or 0
        health = _opened(row, failures, retry_after_s, now)
    if health:
        mine.update(**health)
    health_changed = bool(health) and (
        health["health"],
        health["health_reason"],
    ) != (row["health"], row["health_reason"])
    if health_changed and health["health"] != row["health"]:
        logger.info(
            "Backend %s is now %s (was %s)%s",
            backend_name,
            health["health"],
            row["health"],
            f": {health['health_reason']}" if health["health_reason"] else "",
        )
    if health_changed:
        # Health moves routing at once, in every process. The averages alone
        # do not bump the version: a bump rebuilds every process's snapshot,
        # and they reach routing within the snapshot's maximum age anyway.
        _state_version_bump()


#: A healthy backend's successful attempts are folded in memory and written at
#: most this often per process; failures and health changes are written at once.
AVERAGES_WRITE_INTERVAL_S = 1.0


class _Samples:
    """Successful attempts not yet written: how many, and their TTFTs in order."""

    def __init__(self) -> None:
        self.count = 0
        self.ttfts: list[float] = []

    def averages(self) -> dict[str, object]:
        """UPDATE values folding these samples into the stored averages, in
        order, as ``_ema`` would one by one."""
        keep = (1 - EMA_ALPHA) ** self.count
        values: dict[str, object] = {"error_rate": F("error_rate") * keep}
        if self.ttfts:
            n = len(self.ttfts)
            weighted = sum(
                EMA_ALPHA * (1 - EMA_ALPHA) ** (n - 1 - i) * t
                for i, t in enumerate(self.ttfts)
            )
            seeded = self.ttfts[0]
            for t in self.ttfts[1:]:
                seeded = EMA_ALPHA * t + (1 - EMA_ALPHA) * seeded
            values["latency_ema_ms"] = Coalesce(
                F("latency_ema_ms") * (1 - EMA_ALPHA) ** n + weighted,
                Value(seeded),
                output_field=FloatField(),
            )
        return values


_held: dict[str, _Samples] = {}
_written_at: dict[str, float] = {}
_healthy: set[str] = set()
_held_lock = threading.Lock()


def _held_back(backend: str, ttft_ms: float | None) -> bool:
    """Keep a success in memory if the backend is healthy (as this process
    last wrote it) and its averages were written less than a second ago."""
    with _held_lock:
        recent = time.monotonic() - _written_at.get(backend, -math.inf)
        if backend not in _healthy or recent >= AVERAGES_WRITE_INTERVAL_S:
            return False
        samples = _held.setdefault(backend, _Samples())
        samples.count += 1
        if ttft_ms is not None:
            samples.ttfts.append(ttft_ms)
        return True


def _take_held(backend: str, ttft_ms: float | None, *, include: bool) -> _Samples:
    """The successes held for ``backend`` (plus this one when ``include``), to
    be written now."""
    with _held_lock:
        samples = _held.pop(backend, None) or _Samples()
        _written_at[backend] = time.monotonic()
    if include:
        samples.count += 1
        if ttft_ms is not None:
            samples.ttfts.append(ttft_ms)
    return samples


def _held_healthy(backend: str) -> None:
    with _held_lock:
        _healthy.add(backend)


def _held_unhealthy(backend: str) -> None:
    with _held_lock:
        _healthy.discard(backend)


def _opened(
    row: dict[str, Any],
    failures: int,
    retry_after_s: float | None,
    now: datetime,
) -> dict[str, object]:
    """The health a failed attempt leaves: a 429's cool-down, an open circuit
    (enough failures in a row, or a failed half-open trial), or no change."""
    if retry_after_s is not None and retry_after_s > 0:
        until = now + timedelta(seconds=retry_after_s)
        reason = (
            f"the upstream answered 429; Retry-After {retry_after_s:g} s, "
            f"until {_until_text(until)}"
        )
    elif (
        failures >= settings.NEXUS_PROXY_FAILURES_TO_OPEN
        or row["health_reason"] == HALF_OPEN
    ):
        until = now + timedelta(seconds=settings.NEXUS_PROXY_COOLDOWN_S)
        reason = (
            f"circuit open after {failures} failed request"
            f"{'s' if failures != 1 else ''} in a row; one trial request "
            f"after {_until_text(until)}"
        )
    else:
        return {}
    current = row["unhealthy_until"]
    if (
        row["health"] == Health.UNHEALTHY.value
        and current is not None
        and current >= until
    ):
        return {}  # already out for at least as long
    return {
        "health": Health.UNHEALTHY.value,
        "health_reason": reason,
        "unhealthy_until": until,
        "loading_eta_ms": None,
    }


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
    names = list(due.values_list("name", flat=True))
    if not names:
        return 0
    opened = [name for name in names if _half_open(name, now)]
    if opened:
        _state_version_bump()
        logger.info("Circuit half-open for %s", ", ".join(opened))
    return len(opened)


def _half_open(name: str, now: datetime) -> bool:
    """Half-open ``name`` if its circuit is still open and due (compare and
    set: of the processes that saw it due, one wins; on SQLite too, where
    ``select_for_update`` locks nothing). The winner forgets the last trial
    before anyone can see the circuit half-open, so one trial is let through."""
    with transaction.atomic():
        won = Backend.objects.filter(
            name=name, health=Health.UNHEALTHY.value, unhealthy_until__lte=now
        ).update(
            health=Health.UNKNOWN.value,
            health_reason=HALF_OPEN,
            unhealthy_until=None,
            consecutive_failures=0,
        )
        if won:
            shared_state().reset(TRIAL + name)
    return bool(won)
