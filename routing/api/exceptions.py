"""One exception handler: every API error is ``{"error": {type, message, fields}}``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from routing.deployment import skipped_step
from routing.errors import NexusError
from routing.request_log import OUTAGE_ERRORS

logger = logging.getLogger(__name__)

TYPES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "service_unavailable",
}

#: Database errors that mean "unreachable right now" (connection refused or lost,
#: a failover, a lock or statement timeout): answered 503 with ``Retry-After``.
OUTAGE_RETRY_AFTER_SECONDS = 5
OUTAGE_MESSAGE = (
    "Nexus cannot reach its database right now. "
    f"Retry in {OUTAGE_RETRY_AFTER_SECONDS} s."
)


def flatten_detail(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"a.0.c": [messages]}``."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and prefix:
                name = prefix
            out.update(flatten_detail(value, name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or "non_field_errors": [str(item) for item in detail]}
        out = {}
        for index, item in enumerate(detail):
            if item:
                out.update(flatten_detail(item, f"{prefix}.{index}"))
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def protected_message(exc: ProtectedError) -> str:
    """What a delete refused by ``on_delete=PROTECT`` says."""
    names = ", ".join(sorted(str(obj) for obj in exc.protected_objects))
    return f"Still in use by: {names}. Change those first."


def error_body(
    error_type: str,
    message: str,
    fields: dict[str, list[str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": error_type,
        "message": message,
        "fields": fields or {},
    }
    body.update(extra)
    return {"error": body}


def _validation_message(fields: dict[str, list[str]]) -> str:
    parts = [f"{name}: {' '.join(messages)}" for name, messages in fields.items()]
    return (
        "Fix these fields: " + "; ".join(parts) if parts else "The request is invalid."
    )


def speaks_json(request: HttpRequest) -> bool:
    """Errors in the API's JSON shape: the REST API, the proxy and ``/metrics``
    (read by machines); a page everywhere else."""
    return request.path.startswith(("/api/", "/v1/")) or request.path == "/metrics"


def outage_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 with ``Retry-After`` while the database is unreachable: JSON where
    ``speaks_json``, a short page elsewhere (rendered without the request: no database).

    Remembers ``exc`` on the request so ``routing.request_log`` logs one line.
    """
    request.nexus_outage = exc  # type: ignore[attr-defined]
    response: HttpResponse
    if speaks_json(request):
        body = error_body("service_unavailable", OUTAGE_MESSAGE)
        response = JsonResponse(body, status=503)
    else:
        page = render_to_string("503.html", {"message": OUTAGE_MESSAGE})
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
    return response


def skipped_step_response(
    request: HttpRequest, exc: BaseException
) -> HttpResponse | None:
    """503 naming the deployment step ``exc`` shows was skipped (collectstatic,
    migrate): JSON under /api/ and /v1/, a page without static files elsewhere.
    None for any other error."""
    message = skipped_step(exc)
    if message is None:
        return None
    logger.error("%s %s: %s (%s)", request.method, request.path, message, exc)
    if request.path.startswith(("/api/", "/v1/")):
        return JsonResponse(error_body("service_unavailable", message), status=503)
    return HttpResponse(render_to_string("503.html", {"message": message}), status=503)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map every exception raised in an API view to the stable error shape."""
    message = skipped_step(exc)
    if message is not None:
        return Response(
            error_body("service_unavailable", message),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, OUTAGE_ERRORS):
        request = context["request"]
        request._request.nexus_outage = exc  # one log line (routing.request_log)
        return Response(
            error_body("service_unavailable", OUTAGE_MESSAGE),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, NexusError):
        return Response(
            error_body(exc.error_type, exc.message, exc.fields, **exc.extra),
            status=exc.status_code,
        )
    if isinstance(exc, DjangoValidationError):
        fields = (
            {k: list(v) for k, v in exc.message_dict.items()}
            if hasattr(exc, "error_dict")
            else {"non_field_errors": list(exc.messages)}
        )
        exc = exceptions.ValidationError(fields)
    if isinstance(exc, ProtectedError):
        return Response(
            error_body("conflict", protected_message(exc)),
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_detail(exc.detail)
        response.data = error_body(
            "invalid_request", _validation_message(fields), fields
        )
        return response
    detail = getattr(exc, "detail", str(exc))
    message = str(detail.get("detail", detail) if isinstance(detail, dict) else detail)
    if isinstance(exc, exceptions.ParseError):
        message = f"The body is not valid JSON: {message}"
    error_type = TYPES.get(response.status_code, "error")
    response.data = error_body(error_type, message)
    return response


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Unknown URLs under /api/ and /v1/ answer in the API's shape; elsewhere
    Django's page."""
    if request.path.startswith(("/api/", "/v1/")):
        return JsonResponse(
            error_body("not_found", f"No API endpoint at {request.path}."), status=404
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())  # type: ignore[return-value]


def json_400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Requests Django refuses before any view (e.g. a body over the size limit)."""
    if request.path.startswith(("/api/", "/v1/")):
        reason = str(exception) if exception else "The request is malformed."
        return JsonResponse(
            error_body("invalid_request", f"Request refused: {reason}"), status=400
        )
    from django.views.defaults import bad_request

    return bad_request(request, exception or Exception())  # type: ignore[return-value]


def json_500(request: HttpRequest) -> HttpResponse:
    """A last resort that still speaks JSON on the API.

    Django calls it while handling the exception, so a database outage raised
    outside any view (e.g. in a middleware) is still a 503, not a 500.
    """
    exc = sys.exc_info()[1]
    if exc is not None:
        skipped = skipped_step_response(request, exc)
        if skipped is not None:
            return skipped
    if isinstance(exc, OUTAGE_ERRORS):
        return outage_response(request, exc)
    if speaks_json(request):
        return JsonResponse(
            error_body("internal_error", "Nexus failed to handle this request."),
            status=500,
        )
    from django.views.defaults import server_error

    return server_error(request)  # type: ignore[return-value]
