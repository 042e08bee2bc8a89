"""Django's request handlers, with a lean middleware chain for API clients.

Browsers need sessions, CSRF, login, messages, htmx and static files; a caller
with an API key needs none of them. The proxy (``/v1/``, API keys only) never
runs that middleware (``nexus_site.asgi``); a REST API call to ``/api/`` that
carries an ``Authorization`` header skips it too, since such a call is
authenticated by its key or refused (``routing.api.auth``), never by a session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.urls import set_urlconf
from django.utils.log import log_response

#: Middleware that only browsers use (see the module docstring). Besides the
#: work, the session and message storages reference the request and it them:
#: garbage cycles.
BROWSER_ONLY = frozenset(
    {
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
        "routing.middleware.StaticFilesMiddleware",
    }
)


@contextmanager
def browser_middleware_left_out() -> Iterator[None]:
    """``settings.MIDDLEWARE`` without ``BROWSER_ONLY`` while a handler loads it."""
    full = settings.MIDDLEWARE
    settings.MIDDLEWARE = [m for m in full if m not in BROWSER_ONLY]
    try:
        yield
    finally:
        settings.MIDDLEWARE = full


def keyed_api_call(request: HttpRequest) -> bool:
    """A REST API call with an API key (or a malformed ``Authorization``
    header, which the key authentication refuses as it would anyway)."""
    return request.path_info.startswith("/api/") and (
        "HTTP_AUTHORIZATION" in request.META
    )


class _LeanHandler(BaseHandler):
    """The middleware chain without ``BROWSER_ONLY`` (a handler of its own, so
    its view and exception middleware lists match its chain)."""

    def __init__(self) -> None:
        with browser_middleware_left_out():
            self.load_middleware()


class NexusWSGIHandler(WSGIHandler):
    """Django's WSGI handler; keyed API calls take the lean chain."""

    def __init__(self) -> None:
        super().__init__()
        self._lean = _LeanHandler()

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        if not keyed_api_call(request):
            return super().get_response(request)
        # BaseHandler.get_response, on the lean chain.
        set_urlconf(settings.ROOT_URLCONF)
        response: HttpResponseBase = self._lean._middleware_chain(request)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response(
                "%s: %s",
                response.reason_phrase,
                request.path,
                response=response,
                request=request,
            )
        return response
