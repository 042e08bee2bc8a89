"""``Authorization: Bearer <key>`` against hashed API keys, and the permission rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from routing.models import ApiKey, hash_api_key

LAST_USED_GRANULARITY = timedelta(minutes=1)


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
        key = ApiKey.objects.filter(key_hash=hash_api_key(raw.strip())).first()
        if key is None or not key.is_active:
            raise exceptions.AuthenticationFailed("API key is unknown or revoked.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return ApiClient(key_id=key.pk, name=key.name, is_admin=key.is_admin), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="nexus"'


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
