"""Recorded routing decisions: the full trace, never the prompt text."""

from __future__ import annotations

import uuid

from django.db import models

from routing.models.access import ApiKey
from routing.pipeline.types import Outcome


class RoutingDecision(models.Model):
    """One routing call and why it went where it went (or nowhere).

    Scalar columns serve the explorer's filters; the JSON columns hold the
    pipeline's requirements, constraints, annotations, trace and error, since
    issue 15 in the compact form of ``routing.decision_storage`` (all in
    ``trace``, ``budget_status`` in ``annotations``). Read them through
    ``decision_storage.decision_view``, which reads either form.

    On PostgreSQL the table is range-partitioned by ``created_at`` (see
    ``routing/services/partitions.py``) and its primary key is
    ``(id, created_at)``, since a partitioned table's unique keys must include
    the partition key. Django keeps ``id`` alone as the pk: ids are uuid4
    (122 random bits), so two rows never share one in practice, and a lookup
    by id probes each partition's index.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request_id = models.CharField(max_length=128, db_index=True)
    created_at = models.DateTimeField(db_index=True)
    outcome = models.CharField(
        max_length=8, choices=[(o.value, o.value) for o in Outcome]
    )
    error_type = models.CharField(max_length=32, blank=True)
    requested_model = models.CharField(max_length=200)
    model = models.CharField(max_length=200)
    backend_name = models.CharField(max_length=64, blank=True)
    score = models.FloatField(null=True, blank=True)
    estimated_cost_usd = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True
    )
    reason = models.TextField(blank=True)
    fallback_used = models.BooleanField(default=False)
    pipeline_duration_us = models.FloatField(default=0)
    # An API key's name, or "user:" + a username (150 characters at most).
    client = models.CharField(max_length=160, blank=True)
    # The key that routed it: only that key (or an admin key) may report its
    # usage. No constraint, cascade or index: keys are revoked, not deleted, and
    # recording a decision stays one plain insert.
    api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    config_version = models.PositiveBigIntegerField(default=0)
    requirements = models.JSONField(default=dict)
    constraints = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    trace = models.JSONField(default=list)
    warnings = models.JSONField(default=list)
    # Proxied requests: each upstream attempt in order (backend, outcome,
    # status, error, duration_ms, ttft_ms); empty for decision-only calls.
    attempts = models.JSONField(default=list, blank=True)
    details = models.JSONField(
        default=dict,
        help_text="The rest of the response: error, queue fields, models tried.",
    )
    # Written by ``generate_decisions`` (demos, load tests), never by a call.
    sample = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["outcome", "-created_at"], name="decision_outcome_time"
            ),
            models.Index(
                fields=["requested_model", "-created_at"],
                name="decision_requested_time",
            ),
            models.Index(fields=["model", "-created_at"], name="decision_model_time"),
            models.Index(
                fields=["backend_name", "-created_at"], name="decision_backend_time"
            ),
            # The explorer's "decisions made under config version N" link.
            models.Index(
                fields=["config_version", "-created_at"], name="decision_version_time"
            ),
            # The explorer's and the API's sample filter, newest first: samples
            # only, and real decisions only (each row is in one of the two; a
            # history of mostly samples would otherwise be walked to find the
            # real ones).
            models.Index(
                fields=["-created_at", "-id"],
                name="decision_sample_time",
                condition=models.Q(sample=True),
            ),
            models.Index(
                fields=["-created_at", "-id"],
                name="decision_real_time",
                condition=models.Q(sample=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} {self.requested_model} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class DecisionExclusion(models.Model):
    """Which reconcilers excluded backends in a decision (the ``excluded_by`` filter)."""

    # No index of its own: the unique (decision, reconciler) constraint's index
    # starts with it and serves the joins and cascading deletes. No database
    # constraint: on PostgreSQL both tables are partitioned by created_at, and a
    # foreign key to a partitioned table must name its whole primary key
    # (id, created_at). Django still cascades deletes in Python; retention drops
    # the matching partitions of both tables together.
    decision = models.ForeignKey(
        RoutingDecision,
        on_delete=models.CASCADE,
        related_name="exclusions",
        db_index=False,
        db_constraint=False,
    )
    reconciler = models.CharField(max_length=64)
    excluded_count = models.PositiveIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["reconciler", "-created_at"], name="exclusion_time"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["decision", "reconciler"], name="exclusion_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reconciler} excluded {self.excluded_count}"


class DecisionTemplate(models.Model):
    """A recorded decision's compact JSON, against which later decisions of the
    same requested model and calendar month (UTC) are stored as deltas
    (``routing.decision_storage``, delta form). ``id`` is a hash of ``text``,
    so writers never collide; ``created_at`` is the first decision's time: the
    decisions stored against a template are all of its month, and retention
    deletes a month's templates once the month's decisions are gone."""

    id = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)
    requested_model = models.CharField(max_length=200)
    text = models.TextField()

    def __str__(self) -> str:
        return f"template {self.id} ({self.requested_model}, {self.created_at:%Y-%m})"
