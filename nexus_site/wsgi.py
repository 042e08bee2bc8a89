"""WSGI entry point (``gunicorn nexus_site.wsgi:application``).

The run command serves ``nexus_site.asgi`` instead, so that the proxy's long
streams hold no worker thread; WSGI still serves everything, each stream in a
thread of its own.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_site.settings")
django.setup(set_prefix=False)

from nexus_site.handlers import NexusWSGIHandler  # noqa: E402 - needs Django set up

#: Django's WSGI handler; REST API calls with an API key skip the middleware
#: only browsers use (``nexus_site.handlers``).
application = NexusWSGIHandler()

from nexus_site.startup import prepare_process  # noqa: E402 - needs Django set up

prepare_process()
