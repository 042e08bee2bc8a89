"""Service-level domain errors, turned into the API's JSON error shape."""

from __future__ import annotations

from typing import Any


class NexusError(Exception):
    """A failure a client can act on: a stable ``type``, a message, optional fields."""

    status_code = 400
    error_type = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra or {}


class ConflictError(NexusError):
    """The request contradicts what is already recorded (e.g. a second usage report)."""

    status_code = 409
    error_type = "conflict"


class NotFoundError(NexusError):
    """The thing named does not exist."""

    status_code = 404
    error_type = "not_found"
