"""Retention: delete recorded decisions older than ``NEXUS_DECISION_RETENTION_DAYS``.

On PostgreSQL the decisions are partitioned by time (``partitions.py``): every
partition that ends before the cutoff is dropped (or detached) whole, with its
exclusion rows, in a moment whatever it holds. What is left older than the cutoff
(rows of the partition straddling it, with ``NEXUS_DECISION_RETENTION_EXACT``, and
old rows of the DEFAULT partition) and, on SQLite, every old row, is deleted in
batches of ``BATCH_SIZE`` ids, one short transaction each (their
``DecisionExclusion`` rows cascade in the same statement batch), so the table is
never locked for long and routing keeps recording decisions meanwhile. The loop
stops when nothing old is left or the time budget is spent; the next run carries
on. Deleting is idempotent, so two workers at once do no harm. Once nothing old
is left, the decision templates of the months before the cutoff's go too (every
decision stored against one is of its month; kept when expired partitions are
detached for archiving, whose decisions still need them). Last, on PostgreSQL,
the partitioned tables are analyzed (autovacuum never analyzes a partitioned
parent).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from routing.models import RoutingDecision
from routing.services.decision_templates import decision_templates_expire
from routing.services.partitions import (
    decision_partitions,
    decision_partitions_analyze,
    decision_partitions_expire,
    partitioning_active,
    period_start,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
TIME_BUDGET_S = 240.0


@dataclass(frozen=True)
class PruneResult:
    """Rows deleted in batches, whether none is left, partitions expired,
    whether the partitioned tables were analyzed (PostgreSQL), and decision
    templates deleted."""

    deleted: int
    finished: bool
    partitions_expired: tuple[str, ...] = ()
    analyzed: bool = False
    templates_deleted: int = 0


def _delete_batch(*, cutoff: datetime, batch_size: int) -> int:
    with transaction.atomic():
        ids = list(
            RoutingDecision.objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return 0
        _, per_model = RoutingDecision.objects.filter(pk__in=ids).delete()
        return per_model.get(RoutingDecision._meta.label, 0)


def decision_prune_expired(
    *,
    retention_days: int | None = None,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    time_budget_s: float = TIME_BUDGET_S,
) -> PruneResult:
    """Drop expired partitions (PostgreSQL), then delete older decisions left,
    batch by batch."""
    days = retention_days or settings.NEXUS_DECISION_RETENTION_DAYS
    cutoff = (now or timezone.now()) - timedelta(days=days)
    expired: tuple[str, ...] = ()
    if partitioning_active():
        expired = tuple(decision_partitions_expire(cutoff=cutoff).expired)
        partitions = decision_partitions()
        if partitions and not settings.NEXUS_DECISION_RETENTION_EXACT:
            # Rows of a partition wait for the whole partition to expire; only
            # the DEFAULT partition's rows below every partition go now.
            cutoff = min(cutoff, partitions[0].start)
    deadline = time.monotonic() + time_budget_s
    deleted = 0
    while True:
        count = _delete_batch(cutoff=cutoff, batch_size=batch_size)
        deleted += count
        if count < batch_size:
            finished = True
            break
        if time.monotonic() >= deadline:
            finished = False
            break
    templates = 0
    if finished and settings.NEXUS_DECISION_PARTITION_EXPIRY != "detach":
        templates = decision_templates_expire(before=period_start("month", cutoff))
    # Daily fresh statistics for the partitioned parents (autovacuum skips them).
    analyzed = decision_partitions_analyze()
    if deleted:
        logger.info(
            "Deleted %d decision(s) older than %d days%s",
            deleted,
            days,
            "" if finished else " (time budget spent; the next run continues)",
        )
    return PruneResult(
        deleted=deleted,
        finished=finished,
        partitions_expired=expired,
        analyzed=analyzed,
        templates_deleted=templates,
    )
