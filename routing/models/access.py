"""API keys: only a SHA-256 hash of each key is stored."""

from __future__ import annotations

import hashlib
import secrets

from django.db import models

from routing.models.validators import validate_slug_name

KEY_PREFIX = "nx_"


def hash_api_key(raw: str) -> str:
    """SHA-256 hex of a raw key (keys are 256-bit random, so no slow hash is needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_api_key() -> str:
    """A new raw key: ``nx_`` + 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKey(models.Model):
    """A client's key for the REST API; admin keys may also write configuration."""

    name = models.CharField(max_length=64, unique=True, validators=[validate_slug_name])
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(
        max_length=12, editable=False, help_text="First characters, to tell keys apart."
    )
    is_admin = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"
