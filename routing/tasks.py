"""Celery tasks: thin wrappers that take ids or nothing and call one service.

Each task retries on transient database errors (a lost connection, a deadlock
victim, a serialization failure) with backoff; the services are idempotent, so
a retry or a duplicate delivery (``acks_late``) changes nothing more. Results
are not stored. Periodic ones are scheduled in ``CELERY_BEAT_SCHEDULE``
(``nexus_site/settings.py``) with ``expires``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from routing.services import budgets, health, partitions, retention, spend_rollup

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)
TRANSIENT_RETRIES = 3
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": TRANSIENT_RETRIES,
    "ignore_result": True,
}


@shared_task(
    name="routing.budget_reconcile_all", soft_time_limit=50, time_limit=60, **RETRY
)
def budget_reconcile_all() -> list[dict[str, Any]]:
    """Every budget: period rollover, expired reservations, drift in cached totals."""
    return [_result(r) for r in budgets.budget_reconcile_all()]


@shared_task(
    name="routing.budget_reconcile", soft_time_limit=50, time_limit=60, **RETRY
)
def budget_reconcile(budget_id: int) -> dict[str, Any]:
    """One budget, by id (for follow-ups after a bulk change)."""
    return _result(budgets.budget_reconcile(budget_id=budget_id))


@shared_task(
    name="routing.backend_probe_all", soft_time_limit=20, time_limit=25, **RETRY
)
def backend_probe_all() -> dict[str, str]:
    """Probe every enabled backend concurrently and record its health."""
    return health.backend_probe_all()


@shared_task(name="routing.backend_probe", soft_time_limit=20, time_limit=25, **RETRY)
def backend_probe(backend_id: int) -> str | None:
    """Probe one backend now (scheduled by ``backend_probe_soon`` after a commit)."""
    return health.backend_probe(backend_id=backend_id)


@shared_task(
    name="routing.decision_prune_expired", soft_time_limit=300, time_limit=330, **RETRY
)
def decision_prune_expired() -> int:
    """Delete decisions older than the retention period, in batches."""
    return retention.decision_prune_expired().deleted


@shared_task(
    name="routing.decision_partitions_maintain",
    soft_time_limit=120,
    time_limit=150,
    **RETRY,
)
def decision_partitions_maintain() -> dict[str, Any]:
    """PostgreSQL: create decision partitions ahead, expire those past retention.
    SQLite keeps one plain table: nothing to do, and the result says so."""
    if not partitions.partitioning_active():
        logger.info("Decisions are not partitioned (SQLite): nothing to maintain")
        return {"partitioned": False, "created": [], "expired": []}
    days = settings.NEXUS_DECISION_RETENTION_DAYS
    ensured = partitions.decision_partitions_ensure()
    expired = partitions.decision_partitions_expire(
        cutoff=timezone.now() - timedelta(days=days)
    )
    return {
        "partitioned": True,
        "created": ensured.created,
        "moved_rows": ensured.moved_rows,
        "default_rows": ensured.default_rows,
        "expired": expired.expired,
        "detached": expired.detached,
    }


@shared_task(name="routing.spend_rollup", soft_time_limit=50, time_limit=60, **RETRY)
def spend_rollup_task() -> int:
    """Add the usage reports not yet rolled up to the daily spend rollup."""
    return spend_rollup.spend_rollup().rolled_up


@shared_task(
    name="routing.budget_alerts_check", soft_time_limit=50, time_limit=60, **RETRY
)
def budget_alerts_check() -> dict[str, list[int]]:
    """Create the alerts of thresholds crossed this period (their deliveries are
    enqueued after the commit); enqueue again pending alerts whose delivery was lost."""
    from routing.services import alerts

    created = alerts.budget_alerts_check()
    return {
        "created": [alert.pk for alert in created],
        "resent": alerts.budget_alerts_resend_stale(),
    }


#: One POST may take up to four timeouts (connect, write, read, pool).
_ALERT_TIME_LIMIT = int(4 * settings.NEXUS_BUDGET_ALERT_TIMEOUT_S) + 30


@shared_task(
    bind=True,
    name="routing.budget_alert_deliver",
    soft_time_limit=_ALERT_TIME_LIMIT,
    time_limit=_ALERT_TIME_LIMIT + 10,
    **RETRY,
)
def budget_alert_deliver(self: Task, alert_id: int) -> str:
    """POST one alert to its webhook; a failed attempt is retried after the
    service's backoff until the alert's attempts run out (counted on the row,
    so duplicate messages cannot add attempts beyond the limit)."""
    from routing.services import alerts

    delivery = alerts.budget_alert_deliver(alert_id=alert_id)
    if delivery.retry_in_s is not None:
        raise self.retry(
            countdown=delivery.retry_in_s,
            # The row's attempts bound the retries; this only has to be above them.
            max_retries=settings.NEXUS_BUDGET_ALERT_MAX_ATTEMPTS + TRANSIENT_RETRIES,
        )
    return delivery.status


def _result(result: budgets.BudgetReconcileResult) -> dict[str, Any]:
    return {
        "budget_id": result.budget_id,
        "rolled_over": result.rolled_over,
        "released": result.released,
        "spent_drift_usd": str(result.spent_drift_usd),
        "reserved_drift_usd": str(result.reserved_drift_usd),
    }


@shared_task(
    name="routing.backtest_run",
    soft_time_limit=3600,
    time_limit=3660,
    ignore_result=True,
)
def backtest_run(backtest_id: int) -> str | None:
    """Replay one queued backtest (see ``routing.services.backtests``).

    Not retried: a failure is stored on the backtest. A duplicate message
    finds it no longer queued and does nothing. Draft changes are written by
    the configuration API's own writer, as drafts are validated.
    """
    from routing.api.draft_changes import change_write
    from routing.services.backtests import backtest_run as run

    backtest = run(backtest_id=backtest_id, write=change_write)
    return None if backtest is None else backtest.status
