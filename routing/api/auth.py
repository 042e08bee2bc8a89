"""``Authorization: Bearer <key>`` against hashed API keys, and the permission rules."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from routing.models import ApiKey, Backend, hash_api_key
from routing.rate_limits import api_key_failure, client_address
from routing.services.drafts import RESOURCE_MODELS

LAST_USED_GRANULARITY = timedelta(minutes=1)
#: Looked-up keys (and unknown hashes) are trusted without asking the database
#: again for ``NEXUS_API_KEY_CACHE_SECONDS`` (default 5; 0 turns the cache off).
#: So a key revoked elsewhere keeps working for up to that long in each web
#: process that used it within that time; a key saved or deleted in this
#: process (the admin) is forgotten at once.
_key_cache: dict[str, tuple[float, ApiKey | None]] = {}
_KEY_CACHE_MAX = 10_000


def _lookup(key_hash: str) -> ApiKey | None:
    window = settings.NEXUS_API_KEY_CACHE_SECONDS
    now = time.monotonic()
    hit = _key_cache.get(key_hash)
    if hit is not None and now - hit[0] < window:
        return hit[1]
    key = ApiKey.objects.filter(key_hash=key_hash, is_active=True).first()
    if window > 0:
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
        _key_cache[key_hash] = (now, key)
    return key


def api_key_cache_clear() -> None:
    """Forget cached key lookups and refused addresses (after revoking keys in
    bulk, and in tests)."""
    global _active_hashes
    _key_cache.clear()
    _refused_until.clear()
    _active_hashes = (-math.inf, frozenset())


@receiver([post_save, post_delete], sender=ApiKey)
def _forget_saved_key(sender: type[ApiKey], instance: ApiKey, **kwargs: Any) -> None:
    """A key revoked, edited or deleted in this process stops being trusted now."""
    global _active_hashes
    _key_cache.pop(instance.key_hash, None)
    _active_hashes = (-math.inf, frozenset())


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
        key_hash = hash_api_key(raw.strip())
        if key_hash not in _key_cache:
            _refuse_while_limited(request, key_hash)
        key = _lookup(key_hash)
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


#: Addresses this process refused (429), until when: while refused, a key that
#: is not among the active keys' hashes is refused without a lookup of its own, so
#: a flood of random keys costs no query per key once it is over the limit.
_refused_until: dict[str, float] = {}
#: (when loaded, hashes of every active key): refreshed at most once per
#: ``NEXUS_API_KEY_CACHE_SECONDS`` and only while some address is refused.
_active_hashes: tuple[float, frozenset[str]] = (-math.inf, frozenset())


def _throttled(address: str, wait: float) -> exceptions.Throttled:
    return exceptions.Throttled(
        wait=wait,
        # DRF appends "Expected available in N seconds."
        detail=f"Too many unknown or revoked API keys from {address}; "
        "send a valid key.",
    )


def _is_active_key(key_hash: str) -> bool:
    """Whether ``key_hash`` is an active key's, from one query per cache window."""
    global _active_hashes
    now = time.monotonic()
    loaded_at, hashes = _active_hashes
    if now - loaded_at >= settings.NEXUS_API_KEY_CACHE_SECONDS:
        hashes = frozenset(
            ApiKey.objects.filter(is_active=True).values_list("key_hash", flat=True)
        )
        _active_hashes = (now, hashes)
    return key_hash in hashes


def _refuse_while_limited(request: Request, key_hash: str) -> None:
    """429 without a lookup of ``key_hash`` while this address is refused (see
    ``_refused_until``), unless it is an active key: valid keys always work."""
    if not _refused_until:
        return
    address = client_address(request._request)
    until = _refused_until.get(address)
    if until is None:
        return
    wait = until - time.monotonic()
    if wait <= 0:
        _refused_until.pop(address, None)  # another thread may have done it
        return
    if not _is_active_key(key_hash):
        raise _throttled(address, wait)


def _refuse_if_guessing(request: Request) -> None:
    """Count an unknown key from this address; 429 once it presented too many."""
    window = api_key_failure(request._request)
    if window is not None:
        address = client_address(request._request)
        if len(_refused_until) >= _KEY_CACHE_MAX:
            _refused_until.clear()
        _refused_until[address] = time.monotonic() + window.retry_after
        raise _throttled(address, window.retry_after)


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


class ConfigPermission(permissions.DjangoModelPermissions):
    """API keys: any key reads, admin keys write. Login sessions: Django's model
    permissions, as in the admin (view to read; add, change, delete to write)."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }
    message = "Writing configuration needs an admin API key."

    def has_permission(self, request: Request, view: Any) -> bool:
        user: Any = request.user
        if not (user and user.is_authenticated):
            return False
        if isinstance(user, ApiClient):
            return request.method in permissions.SAFE_METHODS or user.is_admin
        if super().has_permission(request, view):
            if _may_write_models(request, view):
                return True
            self.message = (
                "Writing a backend's models needs the permissions "
                f"{', '.join(_MODEL_PERMISSIONS)} too (the 'admins' group has them)."
            )
            return False
        if _operates_backend(request, view):
            return True
        model = self._queryset(view).model
        needed = self.get_required_permissions(request.method or "GET", model)
        missing = sorted(p for p in needed if not user.has_perm(p))
        # Set on this instance (one per request): DRF reports it as the 403's message.
        self.message = (
            f"Your login lacks the permission {', '.join(missing)}; an administrator "
            "can grant it, e.g. by adding you to the 'operators' or 'admins' group."
        )
        if getattr(view, "basename", "") == "backend" and user.has_perm(
            "routing.operate_backend"
        ):
            self.message += (
                " With routing.operate_backend you may PATCH only "
                f"{', '.join(Backend.OPERATOR_FIELDS)}."
            )
        return False


def _operates_backend(request: Request, view: Any) -> bool:
    """A PATCH of a backend's operator fields only, by a login with
    ``routing.operate_backend`` (the ``operators`` group)."""
    if request.method != "PATCH" or getattr(view, "basename", "") != "backend":
        return False
    user: Any = request.user
    data = request.data
    return (
        user.has_perm("routing.operate_backend")
        and isinstance(data, dict)
        and bool(data)
        and set(data) <= set(Backend.OPERATOR_FIELDS)
    )


#: Replacing a backend's served models adds, changes and deletes model offers.
_MODEL_PERMISSIONS = (
    "routing.add_backendmodel",
    "routing.change_backendmodel",
    "routing.delete_backendmodel",
)


def _may_write_models(request: Request, view: Any) -> bool:
    """A session writing a backend's ``models`` needs the offers' permissions too
    (as the admin's inline does)."""
    if (
        request.method in permissions.SAFE_METHODS
        or getattr(view, "basename", "") != "backend"
        or not isinstance(request.data, dict)
        or "models" not in request.data
    ):
        return True
    user: Any = request.user
    return bool(user.has_perms(_MODEL_PERMISSIONS))


class DraftPermission(permissions.BasePermission):
    """Drafts: an admin API key, or a staff login (reading and writing a draft
    changes no configuration; applying one is checked per change, see
    ``draft_apply_missing_permissions``)."""

    message = "Drafts need an admin API key or a staff login."

    def has_permission(self, request: Request, view: Any) -> bool:
        user: Any = request.user
        if not (user and user.is_authenticated):
            return False
        if isinstance(user, ApiClient):
            return user.is_admin
        return bool(getattr(user, "is_staff", False))


_DRAFT_ACTION_PERMISSIONS = {"create": "add", "update": "change", "delete": "delete"}


def draft_apply_authorizer(
    user: Any, refusal: Callable[[str], Exception]
) -> Callable[[Any], None]:
    """``draft_apply``'s ``authorize`` for ``user`` (the API's and the
    explorer's): raises ``refusal(message)``, the message naming the
    permissions it lacks (``draft_apply_missing_permissions``)."""

    def authorize(changes: Any) -> None:
        missing = draft_apply_missing_permissions(user, changes)
        if missing:
            raise refusal(
                "Applying this draft makes live edits your login may not make: "
                f"it lacks {', '.join(missing)}."
            )

    return authorize


def draft_apply_missing_permissions(user: Any, changes: Any) -> list[str]:
    """The model permissions a login lacks to make ``changes`` live (an admin
    API key lacks none): what each live edit would need, e.g.
    ``routing.change_backend``, the served models' permissions when a backend's
    ``models`` are given, or ``routing.operate_backend`` for an update of its
    operator fields only."""
    if isinstance(user, ApiClient):
        return [] if user.is_admin else ["an admin API key"]
    missing: set[str] = set()
    for change in changes:
        model = RESOURCE_MODELS[change.resource]._meta.model_name
        needed = {f"routing.{_DRAFT_ACTION_PERMISSIONS[change.action]}_{model}"}
        if change.resource == "backends":
            if "models" in change.fields:
                needed |= set(_MODEL_PERMISSIONS)
            elif change.action == "delete":
                needed.add("routing.delete_backendmodel")
            operator_only = (
                change.action == "update"
                and bool(change.fields)
                and set(change.fields) <= set(Backend.OPERATOR_FIELDS)
            )
            if operator_only and user.has_perm("routing.operate_backend"):
                needed.discard("routing.change_backend")
        missing |= {p for p in needed if not user.has_perm(p)}
    return sorted(missing)
