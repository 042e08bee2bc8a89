"""Guarantees for every request: an ``X-Request-ID`` on the response, a JSON 400
for a header too long to be sane, and a 503 (not a traceback) while the
database is unreachable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import bad_request

from routing.api.exceptions import OUTAGE_ERRORS, error_body, outage_response
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
    if request.path.startswith("/api/"):
        body = error_body("invalid_request", message, {header: [message]})
        return JsonResponse(body, status=400)
    return bad_request(request, ValueError(message))


class RequestIdMiddleware:
    """Outermost: every response, errors included, carries ``X-Request-ID``.

    A response that already has one (the route call sets its own) is left alone.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = _oversized_header(request)
        if header is not None:
            response = _header_refused(request, header)
        else:
            response = self.get_response(request)
        if "X-Request-ID" not in response:
            response["X-Request-ID"] = request_id_of(request)
        return response

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        """A database outage in a view outside the API (explorer, admin): 503."""
        if isinstance(exception, OUTAGE_ERRORS):
            return outage_response(request, exception)
        return None
