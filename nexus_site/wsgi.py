"""WSGI entry point (``gunicorn nexus_site.wsgi:application``).

The run command serves ``nexus_site.asgi`` instead, so that the proxy's long
streams hold no worker thread; WSGI still serves everything, each stream in a
thread of its own.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_site.settings")
application = get_wsgi_application()

from nexus_site.startup import prepare_process  # noqa: E402 - needs Django set up

prepare_process()
