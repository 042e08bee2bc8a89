"""``Authorization: Bearer <key>`` against hashed API keys, and the permission rules."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from routing.models import ApiKey, hash_api_key
from routing.rate_limits import api_key_failure, client_address

LAST_USED_GRANULARITY = timedelta(minutes=1)
#: How long a looked-up key is trusted without asking the database again; a
#: revoked key stops working within this time.
KEY_CACHE_SECONDS = 5.0
_key_cache: dict[str, tuple[float, ApiKey | None]] = {}
_KEY_CACHE_MAX = 10_000


def _lookup(key_hash: str) -> ApiKey | None:
    now = time.monotonic()
    hit = _key_cache.get(key_hash)
    if hit is not None and now - hit[0] < KEY_CACHE_SECONDS:
        return hit[1]
    key = ApiKey.objects.filter(key_hash=key_hash, is_active=True).first()
    if len(_key_cache) >= _KEY_CACHE_MAX:
        _key_cache.clear()
    _key_cache[key_hash] = (now, key)
    return key


def api_key_cache_clear() -> None:
    """Forget cached key lookups (after revoking keys in bulk, and in tests)."""
    _key_cache.clear()


@dataclass(frozen=True)
class ApiClient:
    """The caller behind an API key (stands in for ``request.user``)."""

    key_id: int
    name: str
    is_admin: bool
    is_authenticated: bool = True
    is_staff: bool = False

    def get_username(self) -> str:
        return f"api-key:{self.name}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Bearer API keys; only the key's SHA-256 is looked up."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode(
            "latin-1", errors="replace"
        )
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed(
                "Authorization header must be 'Bearer <api key>'."
            )
        key = _lookup(hash_api_key(raw.strip()))
        if key is None:
            _refuse_if_guessing(request)
            raise exceptions.AuthenticationFailed("API key is unknown or revoked.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return ApiClient(key_id=key.pk, name=key.name, is_admin=key.is_admin), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="nexus"'


def _refuse_if_guessing(request: Request) -> None:
    """Count an unknown key from this address; 429 once it presented too many."""
    window = api_key_failure(request._request)
    if window is not None:
        address = client_address(request._request)
        raise exceptions.Throttled(
            wait=window.retry_after,
            # DRF appends "Expected available in N seconds."
            detail=f"Too many unknown or revoked API keys from {address}; "
            "send a valid key.",
        )


def client_name(request: Request) -> str:
    """The name recorded as a decision's client."""
    user: Any = request.user
    if isinstance(user, ApiClient):
        return user.name
    return f"user:{user.get_username()}" if user.is_authenticated else ""


def actor_name(request: Request) -> str:
    """Who to name in the audit log."""
    user: Any = request.user
    return str(user.get_username())


class ConfigPermission(permissions.BasePermission):
    """Anyone authenticated may read; writes need an admin key or a staff session."""

    message = "Writing configuration needs an admin API key or a staff login."

    def has_permission(self, request: Request, view: Any) -> bool:
        user: Any = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        if isinstance(user, ApiClient):
            return user.is_admin
        return bool(user.is_staff)
