"""Issuing API keys; the raw key is returned once and only its hash is stored."""

from __future__ import annotations

from django.db import transaction

from routing.models import ApiKey, generate_api_key, hash_api_key


@transaction.atomic
def api_key_issue(*, name: str, is_admin: bool = False) -> tuple[ApiKey, str]:
    """Create a key named ``name``; return the row and the raw key (shown once)."""
    raw = generate_api_key()
    key = ApiKey(name=name, key_hash=hash_api_key(raw), hint=raw[:8], is_admin=is_admin)
    key.full_clean()
    key.save()
    return key, raw
