"""ASGI entry point, the one the run command serves::

    gunicorn nexus_site.asgi:application -k uvicorn_worker.UvicornWorker

Async views (the ``/v1/`` proxy) run on each worker's event loop; the REST API,
explorer and admin are sync views that Django runs in a thread.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_site.settings")
application = get_asgi_application()

from nexus_site.startup import prepare_process  # noqa: E402 - needs Django set up

prepare_process()
