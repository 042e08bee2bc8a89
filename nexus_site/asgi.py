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

import asyncio
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import django
from a2wsgi import WSGIMiddleware
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import HttpRequest, HttpResponseBase
from django.urls import set_script_prefix

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_site.settings")
django.setup(set_prefix=False)

from nexus_site.handlers import NexusWSGIHandler, browser_middleware_left_out  # noqa: E402


class NexusASGIHandler(ASGIHandler):
    """Django's handler with a fixed set of sync threads per process, and a
    request cycle that leaves no garbage cycle behind.

    Django starts a new thread (``ThreadSensitiveContext``) for every request's
    sync code, and with it a new database connection: measured with
    ``bench_api``, that more than halves the REST API's throughput. Here each
    request's sync code runs on one of ``NEXUS_WEB_THREADS`` long-lived
    threads (taken in turn), as under gunicorn's threaded WSGI workers; the
    proxy's own database work runs on its own threads (``routing.proxy``).

    Django's ``handle`` races the response against the client's disconnect in
    an ``asyncio.TaskGroup`` that it leaves by raising an exception; the
    exception group's traceback and the group reference each other, and with
    them the request's whole object graph (request, response, task, httpx
    objects: about 175 objects per proxied call) becomes cyclic garbage that
    only the collector frees. Measured under 32 concurrent proxied calls:
    collections of 40,000+ such objects stalled the event loop for 65-240 ms.
    ``handle`` here runs the same race with ``asyncio.wait``, so a request's
    objects are freed by reference counting when it ends.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        """``MIDDLEWARE`` without what only browsers use (``BROWSER_ONLY``):
        the proxy answers API keys, never sessions. Read once, at start."""
        with browser_middleware_left_out():
            super().load_middleware(is_async)

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

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's ``handle`` (5.x/6.0), the race run by ``_respond_or_abort``."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            set_script_prefix(get_script_prefix(scope))
            await signals.request_started.asend(sender=self.__class__, scope=scope)
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                body_file.close()
                await self.send_response(error_response, send)
                await sync_to_async(error_response.close)()
                return
            response = await self._respond_or_abort(request, receive, send)
            if response is None:
                await signals.request_finished.asend(sender=self.__class__)
            else:
                await sync_to_async(response.close)()

    async def _respond_or_abort(
        self, request: HttpRequest, receive: Any, send: Any
    ) -> HttpResponseBase | None:
        """Respond, unless the client disconnects first: then the view is
        cancelled (as in Django) and None is returned."""
        loop = asyncio.get_running_loop()
        listener = loop.create_task(self.listen_for_disconnect(receive))
        responder = loop.create_task(self._respond(request, send))
        try:
            await asyncio.wait(
                (listener, responder), return_when=asyncio.FIRST_COMPLETED
            )
        finally:  # also when this task is cancelled (the server stops)
            for task in (listener, responder):
                if not task.done():
                    task.cancel()
        if not responder.done():
            await asyncio.wait((responder,))  # its clean-up (the proxy records)
        if listener.done() and not listener.cancelled():
            error = listener.exception()  # retrieved, so never logged as lost
            if not isinstance(error, RequestAborted):
                raise error  # not a disconnect: Django's handler raises too
        if responder.cancelled():
            return None
        return responder.result()  # the view's exception, if any, goes on

    async def _respond(self, request: HttpRequest, send: Any) -> HttpResponseBase:
        response = await self.run_get_response(request)
        await self.send_response(response, send)
        return response


_proxy = NexusASGIHandler()
#: Everything but the proxy: Django's WSGI application on a fixed pool of
#: threads (one hop per request, connections kept per thread), as under
#: gunicorn's threaded WSGI workers.
_sync = WSGIMiddleware(NexusWSGIHandler(), workers=settings.NEXUS_WEB_THREADS)


#: How long a stopping worker waits for recordings still running.
DRAIN_TIMEOUT_S = 10.0


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/v1/`` (the proxy's async views) on the event loop; the rest as WSGI;
    at shutdown, the proxy's recordings still running are waited for."""
    if scope["type"] == "http" and scope["path"].startswith("/v1/"):
        await _proxy(scope, receive, send)
    elif scope["type"] == "http":
        await _sync(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)
    # Websockets are not served.


async def _lifespan(receive: Any, send: Any) -> None:
    from routing.proxy.views import drain

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await drain(DRAIN_TIMEOUT_S)
            await send({"type": "lifespan.shutdown.complete"})
            return


from nexus_site.startup import prepare_process  # noqa: E402 - needs Django set up

prepare_process()
