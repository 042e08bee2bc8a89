"""Who may do what: every page needs a login, every edit needs staff (403 otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse

from routing.explorer.http import ExplorerRequest

View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """403 for logged-in users who are not staff (login is checked before this)."""

    @wraps(view)
    def wrapped(request: ExplorerRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not getattr(request.user, "is_staff", False):
            raise PermissionDenied("Only staff may edit the configuration.")
        return view(request, *args, **kwargs)

    return wrapped
