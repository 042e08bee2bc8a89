"""Who may do what: every page needs a login; every edit needs the Django model
permission for it, as in the admin (403 otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse

from routing.explorer.http import ExplorerRequest

View = Callable[..., HttpResponse]


def permission_needed(permission: str) -> Callable[[View], View]:
    """403 for logged-in users without ``permission`` (login is checked before this)."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(
            request: ExplorerRequest, *args: Any, **kwargs: Any
        ) -> HttpResponse:
            if not request.user.has_perm(permission):
                raise PermissionDenied(
                    f"Editing needs the permission {permission} "
                    "(e.g. the 'operators' group)."
                )
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
