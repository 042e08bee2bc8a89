"""Backtests: recorded decisions replayed under a draft (or today's configuration)."""

from __future__ import annotations

from django.db import models

from routing.models.drafts import Draft


class BacktestStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


#: A backtest in one of these is still to finish (one per identical request).
ACTIVE_STATUSES = (BacktestStatus.QUEUED, BacktestStatus.RUNNING)


class Backtest(models.Model):
    """One replay of the decisions recorded in ``[since, until)`` (matching
    ``filters``: model, client, outcome) under ``draft`` (None: today's
    configuration). ``request_key`` is the same for identical requests: at most
    one of them is queued or running (a partial unique constraint).
    Only ``routing.services.backtests`` writes backtests."""

    draft = models.ForeignKey(
        Draft, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    since = models.DateTimeField()
    until = models.DateTimeField()
    filters = models.JSONField(default=dict, blank=True)
    request_key = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=BacktestStatus.choices, default=BacktestStatus.QUEUED
    )
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    summary = models.JSONField(null=True, blank=True)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request_key"],
                condition=models.Q(status__in=["queued", "running"]),
                name="backtest_one_active_per_request",
            )
        ]

    def __str__(self) -> str:
        return f"backtest {self.pk} ({self.status})"


class BacktestChange(models.Model):
    """One decision whose replay differs from what was recorded: ``before``
    (outcome, backend, model, estimated cost) and ``after`` (the same and the
    replay's rejections). ``outcome_change`` reads ``route->reject``;
    ``before_backend`` and ``after_backend`` serve the ``backend`` filter."""

    backtest = models.ForeignKey(
        Backtest, on_delete=models.CASCADE, related_name="changes", db_index=False
    )
    decision_id = models.UUIDField()
    created_at = models.DateTimeField()
    requested_model = models.CharField(max_length=200)
    outcome_change = models.CharField(max_length=16)
    before_backend = models.CharField(max_length=64, blank=True)
    after_backend = models.CharField(max_length=64, blank=True)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)

    class Meta:
        indexes = [
            # The changes list: newest first, cursor on (created_at, id).
            models.Index(
                fields=["backtest", "-created_at", "-id"], name="backtest_change_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decision_id} {self.outcome_change}"
