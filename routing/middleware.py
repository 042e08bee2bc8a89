"""Guarantees for every request: an ``X-Request-ID`` on the response, a JSON 400
for a header too long to be sane, and a 503 (not a traceback) while the
database is unreachable.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import bad_request
from whitenoise.middleware import WhiteNoiseMiddleware

from routing.api.exceptions import (
    OUTAGE_ERRORS,
    error_body,
    outage_response,
    skipped_step_response,
)
from routing.api.routing_input import REQUEST_ID_RE

#: The longest header value accepted: gunicorn's own ``limit_request_field_size``
#: default, so a request is refused the same way whichever server runs Nexus.
MAX_HEADER_BYTES = 8190


def request_id_of(request: HttpRequest) -> str:
    """The caller's ``X-Request-ID`` if sensible, else a fresh one (kept per request)."""
    known: str | None = getattr(request, "nexus_request_id", None)
    if known is None:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        known = given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        request.nexus_request_id = known  # type: ignore[attr-defined]
    return known


def _oversized_header(request: HttpRequest) -> str | None:
    for key, value in request.META.items():
        if key.startswith("HTTP_") and len(value) > MAX_HEADER_BYTES:
            return key[5:].replace("_", "-").title()
    return None


def _header_refused(request: HttpRequest, header: str) -> HttpResponse:
    message = (
        f"The {header} header is longer than {MAX_HEADER_BYTES} bytes; send a "
        "shorter value."
    )
    if request.path.startswith(("/api/", "/v1/")):
        body = error_body("invalid_request", message, {header: [message]})
        return JsonResponse(body, status=400)
    return bad_request(request, ValueError(message))


#: Request attributes the middleware set that refer back to the request (the
#: lazy user's closure, the message storage, htmx details, the CSP nonce).
_BACK_REFERENCES = ("user", "auth", "_messages", "htmx", "_csp_nonce")


def cut_request_cycles(request: HttpRequest, response: Any) -> None:
    """Once a response is rendered (and not streamed: a stream may still read
    the request), cut the reference cycles between the request, its
    middleware's helpers, DRF's request, view and response: then the request's
    objects are freed at once by reference counting instead of piling up for
    the garbage collector (whose passes over them stall every thread)."""
    if getattr(response, "streaming", True):
        return
    context = getattr(response, "renderer_context", None)
    if context:
        drf_request = context.get("request")
        if drf_request is not None:
            drf_request.parser_context = {}
        response.renderer_context = {}
    for name in _BACK_REFERENCES:
        request.__dict__.pop(name, None)


class RequestIdMiddleware:
    """Outermost: every response, errors included, carries ``X-Request-ID``.

    A response that already has one (the route call sets its own) is left alone.
    Sync and async capable, so that under ASGI the proxy's async views run on
    the event loop rather than in a thread.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        header = _oversized_header(request)
        if header is not None:
            response = _header_refused(request, header)
        else:
            response = self.get_response(request)
        if "X-Request-ID" not in response:
            response["X-Request-ID"] = request_id_of(request)
        cut_request_cycles(request, response)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        header = _oversized_header(request)
        if header is not None:
            response = await sync_to_async(_header_refused)(request, header)
        else:
            response = await self.get_response(request)
        if "X-Request-ID" not in response:
            response["X-Request-ID"] = request_id_of(request)
        cut_request_cycles(request, response)
        return response

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        """A skipped deployment step or a database outage in a view outside the
        API (explorer, admin): 503."""
        skipped = skipped_step_response(request, exception)
        if skipped is not None:
            return skipped
        if isinstance(exception, OUTAGE_ERRORS):
            return outage_response(request, exception)
        return None


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, also async capable: a static file is found in memory and
    served; anything else goes on without leaving the event loop."""

    sync_capable = True
    async_capable = True

    def __init__(
        self, get_response: Callable[[HttpRequest], Any], **kwargs: Any
    ) -> None:
        super().__init__(get_response, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        found = self.find_file(path) if self.autorefresh else self.files.get(path)
        if found is not None:
            response: HttpResponse = await sync_to_async(self.serve)(found, request)
            return response
        forward: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        return await forward(request)
