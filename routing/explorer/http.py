"""The typed request every explorer view receives, and the one partial-vs-page rule."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails


class ExplorerRequest(HttpRequest):
    """An authenticated request that went through django-htmx's middleware."""

    htmx: HtmxDetails
    user: AbstractBaseUser  # type: ignore[assignment]


def is_partial(request: ExplorerRequest) -> bool:
    """Render a fragment for htmx requests, the full page otherwise.

    Boosted requests (``hx-boost``) want whole pages, so they count as full.
    """
    return bool(request.htmx) and not request.htmx.boosted


def render_explorer(
    request: ExplorerRequest,
    template: str,
    context: dict[str, Any],
    *,
    fragment: str | None = None,
    status: int = 200,
    force_fragment: bool = False,
) -> HttpResponse:
    """Render ``template`` or ``template#fragment`` (same file) with ``Vary: HX-Request``."""
    name = template
    if fragment and (force_fragment or is_partial(request)):
        name = f"{template}#{fragment}"
    response = render(request, name, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response
