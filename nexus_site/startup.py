"""What every server process does once Django is loaded (ASGI and WSGI alike)."""

from __future__ import annotations

import gc

from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured


def prepare_process() -> None:
    """Fail on Nexus's own serious system checks, then freeze the loaded heap.

    gunicorn runs no system checks: fail at start on Nexus's own (e.g. a
    rate-limit store that cannot be written would leave the brakes off for good).

    What is loaded by now (Django, DRF, the app, their module-level objects) lives
    as long as the process. Freeze it out of the collector's generations, so the
    full collections that request garbage triggers now and then no longer walk it
    all inside a request (measured in routing.dev.bench_server: gen-2 pauses of
    45-90 ms landing in route calls, about 3 per 1000 calls per worker).
    """
    serious = [m for m in run_checks(tags=["nexus"]) if m.is_serious()]
    if serious:
        raise ImproperlyConfigured("\n".join(str(message) for message in serious))
    gc.collect()
    gc.freeze()
