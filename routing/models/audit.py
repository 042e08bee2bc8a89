"""The configuration version counter and the audit log of configuration edits."""

from __future__ import annotations

import ast
import contextlib

from django.db import models


class ConfigVersion(models.Model):
    """Single row: ``version`` increases on every configuration change;
    ``state_version`` on every change of probed backend state (health, models),
    so cached routing snapshots know when to rebuild.
    """

    version = models.PositiveBigIntegerField(default=1)
    state_version = models.PositiveBigIntegerField(default=1)

    def __str__(self) -> str:
        return f"config v{self.version}"


class AuditAction(models.TextChoices):
    CREATE = "create", "create"
    UPDATE = "update", "update"
    DELETE = "delete", "delete"


class AuditEntry(models.Model):
    """One changed field of one configuration object: who, when, old -> new."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=8, choices=AuditAction.choices)
    object_type = models.CharField(max_length=64)
    object_name = models.CharField(max_length=300)
    field = models.CharField(max_length=64)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)
    config_version = models.PositiveBigIntegerField(db_index=True)
    #: The draft this edit applied (null: a live edit).
    draft = models.ForeignKey(
        "routing.Draft",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_name"])]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.object_type} {self.object_name}"

    @property
    def old_text(self) -> str:
        return readable_audit_value(self.old_value)

    @property
    def new_text(self) -> str:
        return readable_audit_value(self.new_value)


def readable_audit_value(value: str) -> str:
    """A stored value as an operator reads it, also one stored before values were
    written readably: ``True``/``False`` as yes/no, ``['a', 'b']`` as ``a, b``."""
    if value == "True":
        return "yes"
    if value == "False":
        return "no"
    if value.startswith("[") and value.endswith("]"):
        with contextlib.suppress(ValueError, SyntaxError, MemoryError):
            items = ast.literal_eval(value)
            if isinstance(items, list):
                return ", ".join(str(item) for item in items)
    return value
