"""Configuration drafts: proposed changes that live routing never reads."""

from __future__ import annotations

from django.db import models


class DraftStatus(models.TextChoices):
    OPEN = "open", "open"
    APPLIED = "applied", "applied"
    DISCARDED = "discarded", "discarded"


#: The configuration resources a draft may change, as the API names them.
DRAFT_RESOURCES = ("zones", "backends", "aliases", "fallbacks", "policies", "budgets")
DRAFT_ACTIONS = ("create", "update", "delete")


class Draft(models.Model):
    """A list of configuration changes, validated but not applied.

    ``changes`` holds ``{"resource", "action", "name", "fields"}`` objects in
    the order they apply. ``base_version`` is the config version the changes
    were last validated on: applying refuses when an object they change was
    edited after it. Only ``routing.services.drafts`` writes drafts.
    """

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    changes = models.JSONField(default=list, blank=True)
    base_version = models.PositiveBigIntegerField()
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status = models.CharField(
        max_length=16, choices=DraftStatus.choices, default=DraftStatus.OPEN
    )
    applied_version = models.PositiveBigIntegerField(null=True, blank=True)
    applied_by = models.CharField(max_length=150, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"])]

    def __str__(self) -> str:
        return f"draft {self.pk} {self.name!r}"
