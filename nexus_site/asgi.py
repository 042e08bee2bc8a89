"""ASGI entry point, the one the run command serves::

    gunicorn nexus_site.asgi:application -k uvicorn_worker.UvicornWorker

``/v1/`` (the proxy's async views) runs on each worker's event loop, so a long
stream holds no thread. Everything else (REST API, explorer, admin: sync
views) is Django's WSGI application on ``NEXUS_WEB_THREADS`` threads per
worker (a2wsgi), one thread hop per request, as under gunicorn's threaded
WSGI workers. Measured with ``bench_api``: Django's own ASGI path for sync
views (a new thread and database connection per request, several hops) served
the REST API at less than half that rate.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from a2wsgi import WSGIMiddleware
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_site.settings")
django.setup(set_prefix=False)


class NexusASGIHandler(ASGIHandler):
    """Django's handler with a fixed set of sync threads per process.

    Django starts a new thread (``ThreadSensitiveContext``) for every request's
    sync code, and with it a new database connection: measured with
    ``bench_api``, that more than halves the REST API's throughput. Here each
    request's sync code runs on one of ``NEXUS_WEB_THREADS`` long-lived
    threads (taken in turn), as under gunicorn's threaded WSGI workers; the
    proxy's own database work runs on its own threads (``routing.proxy``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._threads = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"nexus-sync-{n}")
            for n in range(settings.NEXUS_WEB_THREADS)
        ]
        self._turn = itertools.cycle(self._threads)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(
                f"Django can only handle ASGI/HTTP connections, not {scope['type']}."
            )
        async with ThreadSensitiveContext(executor=next(self._turn)):
            await self.handle(scope, receive, send)


_proxy = NexusASGIHandler()
#: Everything but the proxy: Django's WSGI application on a fixed pool of
#: threads (one hop per request, connections kept per thread), as under
#: gunicorn's threaded WSGI workers.
_sync = WSGIMiddleware(get_wsgi_application(), workers=settings.NEXUS_WEB_THREADS)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/v1/`` (the proxy's async views) on the event loop; the rest as WSGI."""
    if scope["type"] == "http" and scope["path"].startswith("/v1/"):
        await _proxy(scope, receive, send)
    elif scope["type"] == "http":
        await _sync(scope, receive, send)
    # Other scopes (lifespan, websocket) are not served.


from nexus_site.startup import prepare_process  # noqa: E402 - needs Django set up

prepare_process()
