"""Clear answers when a deployment skipped a step (collectstatic, migrate).

Without these, every HTML page of such a deployment is a bare 500: a missing
staticfiles manifest entry fails each template that links a stylesheet, and a
missing table fails each query. ``routing.api.exceptions.skipped_step_response`` answers either with a 503
that names the step.
"""

from __future__ import annotations

from django.db import DatabaseError

STATIC_NOT_COLLECTED = (
    "Static files have not been collected: run scripts/serve web, or "
    "python manage.py collectstatic --no-input."
)
NOT_MIGRATED = (
    "The database is not migrated: run scripts/serve web, or "
    "python manage.py migrate --no-input."
)
#: PostgreSQL's SQLSTATE for "relation does not exist".
UNDEFINED_TABLE = "42P01"


def skipped_step(exc: BaseException) -> str | None:
    """The message naming the deployment step ``exc`` shows was skipped, if any."""
    if isinstance(exc, ValueError) and str(exc).startswith(
        "Missing staticfiles manifest entry"
    ):
        return STATIC_NOT_COLLECTED
    if isinstance(exc, DatabaseError):
        cause = exc.__cause__
        if getattr(cause, "sqlstate", None) == UNDEFINED_TABLE:
            return NOT_MIGRATED
        if str(exc).startswith("no such table"):  # SQLite
            return NOT_MIGRATED
    return None
