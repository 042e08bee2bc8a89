"""One log line per request failed by a database outage, not a traceback each.

Attached to the ``django.request`` logger (``LOGGING`` in settings). Imported
while logging is configured, before the apps are ready: keep imports light.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError

OUTAGE_ERRORS = (OperationalError, InterfaceError)


class OutageOneLineFilter(logging.Filter):
    """Rewrite a 5xx record caused by a database outage into one line:
    method, path, status, request id, error class and message. Every other
    record (genuine unexpected errors keep their traceback) passes unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, OUTAGE_ERRORS):
            exc = getattr(request, "nexus_outage", None)
        if request is None or not isinstance(exc, OUTAGE_ERRORS):
            return True
        from routing.middleware import request_id_of

        record.msg = "%s %s %s request_id=%s %s: %s"
        record.args = (
            request.method,
            request.path,
            getattr(record, "status_code", "-"),
            request_id_of(request),
            type(exc).__name__,
            " ".join(str(exc).split()),
        )
        record.exc_info = None
        record.exc_text = None
        return True
