"""Brakes on guessing: failed logins and unknown API keys, counted in shared state.

Only failures are counted, so a valid API key or a right password costs
nothing extra. The client address is ``REMOTE_ADDR``: behind a reverse proxy
that is the proxy's address, so every client behind it shares one counter.

- Logins (explorer ``/login/`` and ``/admin/login/``): after
  ``NEXUS_LOGIN_FAILURES_PER_USER`` failures for one username from one address,
  or ``NEXUS_LOGIN_FAILURES_PER_ADDRESS`` from one address for any usernames,
  within ``NEXUS_LOGIN_LOCKOUT_SECONDS`` of the first, every login attempt for
  that username from that address / from that address (even with the right
  password) is answered 429 with ``Retry-After`` until that window ends. The
  username counter is per address so that nobody can lock a user out from
  elsewhere. A successful login forgets that username's failures there.
- API keys: an address that presented more than
  ``NEXUS_API_KEY_FAILURES_PER_ADDRESS`` unknown or revoked keys within
  ``NEXUS_API_KEY_FAILURE_WINDOW_SECONDS`` gets 429 ``rate_limited`` for its
  unknown keys until the window ends; valid keys keep working.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from routing.shared_state import WindowCount, shared_state


def client_address(request: HttpRequest | None) -> str:
    """The address counters are kept per (``REMOTE_ADDR``)."""
    if request is None:
        return "unknown"
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _user_key(username: str, request: HttpRequest | None) -> str:
    """Failures of one username from one address. Normalised as Django's login
    form normalises it (NFKC), so a look-alike spelling counts as the same name;
    kept per address, so nobody can lock a user out from elsewhere."""
    name = unicodedata.normalize("NFKC", username).strip().lower()[:150]
    return f"login:user:{client_address(request)}:{name}"


def _address_key(prefix: str, request: HttpRequest | None) -> str:
    return f"{prefix}:addr:{client_address(request)}"


def login_limit(request: HttpRequest, username: str) -> WindowCount | None:
    """The exhausted window blocking a login attempt, or None if it may proceed."""
    store = shared_state()
    checks = [
        (_address_key("login", request), settings.NEXUS_LOGIN_FAILURES_PER_ADDRESS)
    ]
    if username:
        checks.append(
            (_user_key(username, request), settings.NEXUS_LOGIN_FAILURES_PER_USER)
        )
    blocking = [
        window for key, limit in checks if (window := store.peek(key)).count >= limit
    ]
    return max(blocking, key=lambda w: w.retry_after, default=None)


@receiver(user_login_failed)
def _count_login_failure(
    sender: Any,
    credentials: dict[str, Any],
    request: HttpRequest | None = None,
    **_: Any,
) -> None:
    """Every failed ``authenticate()`` (explorer and admin login forms)."""
    window = settings.NEXUS_LOGIN_LOCKOUT_SECONDS
    store = shared_state()
    store.hit(_address_key("login", request), window_seconds=window)
    username = str(credentials.get("username") or "")
    if username:
        store.hit(_user_key(username, request), window_seconds=window)


@receiver(user_logged_in)
def _forget_login_failures(
    sender: Any, request: HttpRequest, user: Any, **_: Any
) -> None:
    shared_state().reset(_user_key(user.get_username(), request))


def login_rate_limited(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """Wrap a login view: a POST for a locked username or address gets the 429 page."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            blocked = login_limit(request, str(request.POST.get("username", "")))
            if blocked is not None:
                retry_at = timezone.now() + timedelta(seconds=blocked.retry_after)
                response = render(
                    request,
                    "registration/login_limited.html",
                    {
                        "retry_after": blocked.retry_after,
                        "retry_minutes": -(-blocked.retry_after // 60),
                        "retry_at": retry_at,
                    },
                    status=429,
                )
                response["Retry-After"] = str(blocked.retry_after)
                return response
        return view(request, *args, **kwargs)

    return wrapped


def api_key_failure(request: HttpRequest) -> WindowCount | None:
    """Count an unknown/revoked key from this address; the window if now over."""
    window = shared_state().hit(
        _address_key("apikey", request),
        window_seconds=settings.NEXUS_API_KEY_FAILURE_WINDOW_SECONDS,
    )
    if window.count > settings.NEXUS_API_KEY_FAILURES_PER_ADDRESS:
        return window
    return None
