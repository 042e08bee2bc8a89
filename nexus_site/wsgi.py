"""WSGI entry point: ``gunicorn nexus_site.wsgi:application``."""

from __future__ import annotations

import gc
import os

from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_site.settings")
application = get_wsgi_application()

# gunicorn runs no system checks: fail at start on Nexus's own (e.g. a rate-limit
# store that cannot be written would leave the brakes off for good).
_serious = [message for message in run_checks(tags=["nexus"]) if message.is_serious()]
if _serious:
    raise ImproperlyConfigured("\n".join(str(message) for message in _serious))

# What is loaded by now (Django, DRF, the app, their module-level objects) lives
# as long as the process. Freeze it out of the collector's generations, so the
# full collections that request garbage triggers now and then no longer walk it
# all inside a request (measured in routing.dev.bench_server: gen-2 pauses of
# 45-90 ms landing in route calls, about 3 per 1000 calls per worker).
gc.collect()
gc.freeze()
