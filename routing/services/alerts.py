"""Budget alerts: a crossed threshold becomes one row, and its webhook one delivery.

``budget_alerts_check`` turns every threshold that spent + reserved has reached
this period into a ``BudgetAlert`` row; the row's unique constraint on (budget,
period_start, threshold_percent) makes that happen once, however many checkers
race. A row with a webhook is ``pending`` and handed to the
``routing.budget_alert_deliver`` task after the commit; ``budget_alert_deliver``
POSTs it under a row lock, so the receiver gets one successful delivery.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from routing.models import AlertStatus, Budget, BudgetAlert
from routing.selectors import budget_forecasts, budget_period_of
from routing.services.health import task_enqueue

logger = logging.getLogger(__name__)

#: The longest wait between two attempts at one webhook, whatever the backoff.
RETRY_BACKOFF_MAX_S = 300.0
#: A pending alert this much older than its retries could take is re-sent by the
#: periodic check (its message was lost: broker outage, a worker killed).
STALE_MARGIN_S = 60.0
ERROR_MAX_CHARS = 300


def budget_thresholds_reached(budget: Budget) -> list[int]:
    """The thresholds (percents) whose mark, limit × percent / 100, spent +
    reserved has reached; none without a limit or before any money is used."""
    limit = budget.monthly_limit_usd
    used = budget.spent_usd + budget.reserved_usd
    if limit is None or used <= 0:
        return []
    thresholds = budget.alert_thresholds or []
    return sorted({t for t in thresholds if used * 100 >= limit * t})


def budget_crosses_threshold(budget: Budget, change: Decimal) -> bool:
    """Whether ``change`` takes the budget's spent + reserved, as read, past one
    of its alert thresholds (a cheap test before ``budget_alerts_check``)."""
    limit = budget.monthly_limit_usd
    if limit is None or change <= 0 or not budget.alert_thresholds:
        return False
    before = budget.spent_usd + budget.reserved_usd
    after = before + change
    return any(before * 100 < limit * t <= after * 100 for t in budget.alert_thresholds)


@transaction.atomic
def budget_alerts_check(
    *, budget_ids: Iterable[int] | None = None
) -> list[BudgetAlert]:
    """Create the alerts of thresholds crossed this period that have none yet.

    For every budget with a limit (of ``budget_ids``, or all), each reached
    threshold without a row for (budget, period, threshold) gets one, with the
    figures at this moment and ``exhausted_on`` from the forecast: ``pending``
    when the budget has a webhook (delivered after the commit), ``logged``
    otherwise. Each row is inserted in a savepoint and a unique violation skips
    it, which is ``INSERT ... ON CONFLICT DO NOTHING``: of two racing checkers
    the second waits for the first's commit and then creates nothing. Rows are
    inserted in budget id order (each insert key-share locks its budget row),
    the order the ledger locks budgets in, so a check inside a settlement
    cannot deadlock with the periodic one. Returns the alerts this call created.
    """
    budgets = Budget.objects.filter(monthly_limit_usd__isnull=False).order_by("pk")
    if budget_ids is not None:
        budgets = budgets.filter(pk__in=list(budget_ids))
    today = timezone.now().date()
    crossings = [
        (budget, threshold)
        for budget in budgets
        for threshold in budget_thresholds_reached(budget)
    ]
    if not crossings:
        return []
    existing = set(
        BudgetAlert.objects.filter(
            budget_id__in={budget.pk for budget, _ in crossings}
        ).values_list("budget_id", "period_start", "threshold_percent")
    )
    new = [
        (budget, threshold)
        for budget, threshold in crossings
        if (budget.pk, budget_period_of(budget, today)[0], threshold) not in existing
    ]
    if not new:
        return []
    forecasts = budget_forecasts(list({b.pk: b for b, _ in new}.values()), today=today)
    created: list[BudgetAlert] = []
    for budget, threshold in new:
        start, end = budget_period_of(budget, today)
        assert budget.monthly_limit_usd is not None
        alert = BudgetAlert(
            budget=budget,
            period_start=start,
            period_end=end,
            threshold_percent=threshold,
            spent_usd=budget.spent_usd,
            reserved_usd=budget.reserved_usd,
            limit_usd=budget.monthly_limit_usd,
            exhausted_on=forecasts[budget.pk].exhausted_on,
            webhook_url=budget.alert_webhook_url,
            status=AlertStatus.PENDING
            if budget.alert_webhook_url
            else AlertStatus.LOGGED,
        )
        try:
            with transaction.atomic():
                alert.save(force_insert=True)
        except IntegrityError:
            continue  # another checker created it first
        logger.info(
            "Budget %s crossed %s%% of its limit (period %s): alert %s %s",
            budget.name,
            threshold,
            start,
            alert.pk,
            alert.status,
        )
        created.append(alert)
        if alert.status == AlertStatus.PENDING:
            transaction.on_commit(partial(budget_alert_enqueue, alert.pk))
    return created


def budget_alert_enqueue(alert_id: int) -> bool:
    """Send the delivery task now; False (logged, counted) when the broker refuses.

    Never raises: it runs after a commit. The periodic check re-sends pending
    alerts whose delivery was lost (``budget_alerts_resend_stale``).
    """
    from routing.tasks import budget_alert_deliver

    return task_enqueue(
        budget_alert_deliver,
        (alert_id,),
        about=f"budget alert {alert_id}",
        fallback="the periodic check will send it again",
    )


def alert_payload(alert: BudgetAlert) -> dict[str, Any]:
    """The webhook's JSON body: the contract's fields, figures at crossing time."""

    def day(value: date | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "budget": alert.budget.name,
        "threshold_percent": alert.threshold_percent,
        "spent_usd": float(alert.spent_usd),
        "reserved_usd": float(alert.reserved_usd),
        "limit_usd": float(alert.limit_usd),
        "period_start": day(alert.period_start),
        "period_end": day(alert.period_end),
        "exhausted_on": day(alert.exhausted_on),
    }


def alert_retry_delay_s(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: the configured
    backoff, doubled after each failure, at most ``RETRY_BACKOFF_MAX_S``."""
    base = float(settings.NEXUS_BUDGET_ALERT_RETRY_BACKOFF_S)
    return min(base * 2 ** max(attempts - 1, 0), RETRY_BACKOFF_MAX_S)


@dataclass(frozen=True)
class AlertDelivery:
    """What one delivery call did.

    ``status`` is the alert's status afterwards, or ``busy`` (another worker
    holds it) or ``missing``; ``retry_in_s`` is set when this attempt failed and
    attempts remain.
    """

    alert_id: int
    status: str
    posted: bool = False
    retry_in_s: float | None = None


@transaction.atomic
def budget_alert_deliver(*, alert_id: int) -> AlertDelivery:
    """POST one pending alert to its webhook, at most one worker at a time.

    The claim is a row lock, ``SELECT ... FOR UPDATE SKIP LOCKED``, held by
    this transaction around the POST and the write of its outcome. Why a lock
    and not a lease column: a second worker running the same delivery (a
    duplicate or redelivered message) skips the locked row at once and posts
    nothing, and once the holder commits it sees ``sent`` (or ``failed``) and
    posts nothing either, so a receiver sees one successful delivery; and a
    worker that dies mid-POST loses its connection and with it the lock, so
    nothing stays claimed and no lease length must outlast a slow receiver. The
    price is a connection held for at most the webhook timeout. On SQLite
    (embedded demo) ``FOR UPDATE`` is a no-op, but the write transaction
    (``BEGIN IMMEDIATE``) serialises deliveries the same way, holding the
    database's write lock for the POST.

    Each attempt counts in ``attempts``. A 2xx makes the alert ``sent``; any
    other answer or a transport error is recorded (``http_status``, ``error``)
    and leaves it ``pending`` with ``retry_in_s`` set, until the
    ``NEXUS_BUDGET_ALERT_MAX_ATTEMPTS``-th failure makes it ``failed``. The one
    duplicate left: a worker killed after the receiver answered 2xx but before
    the commit; the ``Idempotency-Key`` header lets a receiver drop it.
    """
    alert = (
        # Only the alert's row: a lock on the budget row would hold up routing's
        # reservations for the length of the POST.
        BudgetAlert.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("budget")
        .filter(pk=alert_id)
        .first()
    )
    if alert is None:
        exists = BudgetAlert.objects.filter(pk=alert_id).exists()
        return AlertDelivery(alert_id, "busy" if exists else "missing")
    if alert.status != AlertStatus.PENDING or not alert.webhook_url:
        return AlertDelivery(alert_id, alert.status)
    http_status, error = _post(alert)
    alert.attempts += 1
    alert.http_status = http_status
    alert.error = error[:ERROR_MAX_CHARS]
    retry_in_s = None
    if not error:
        alert.status = AlertStatus.SENT
        alert.delivered_at = timezone.now()
    elif alert.attempts >= settings.NEXUS_BUDGET_ALERT_MAX_ATTEMPTS:
        alert.status = AlertStatus.FAILED
    else:
        retry_in_s = alert_retry_delay_s(alert.attempts)
    alert.save(
        update_fields=["status", "http_status", "attempts", "error", "delivered_at"]
    )
    log = logger.info if alert.status == AlertStatus.SENT else logger.warning
    log(
        "Budget alert %s (%s at %s%%) attempt %s: %s%s",
        alert.pk,
        alert.budget.name,
        alert.threshold_percent,
        alert.attempts,
        alert.status,
        f" ({alert.error})" if alert.error else "",
    )
    return AlertDelivery(alert_id, alert.status, posted=True, retry_in_s=retry_in_s)


def _post(alert: BudgetAlert) -> tuple[int | None, str]:
    """(HTTP status or None, error text or "" for a 2xx)."""
    body = json.dumps(alert_payload(alert), separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Nexus budget alerts",
        "Idempotency-Key": f"nexus-budget-alert-{alert.pk}",
    }
    try:
        response = httpx.post(
            alert.webhook_url,
            content=body,
            headers=headers,
            timeout=settings.NEXUS_BUDGET_ALERT_TIMEOUT_S,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        detail = str(exc)
        return None, type(exc).__name__ + (f": {detail}" if detail else "")
    if response.is_success:
        return response.status_code, ""
    text = response.text[:200].strip()
    return response.status_code, f"HTTP {response.status_code}" + (
        f": {text}" if text else ""
    )


def alert_stale_after() -> timedelta:
    """How long a pending alert's own retries may take at most, plus a margin."""
    attempts = int(settings.NEXUS_BUDGET_ALERT_MAX_ATTEMPTS)
    waits = sum(alert_retry_delay_s(n) for n in range(1, attempts))
    posts = attempts * 4 * float(settings.NEXUS_BUDGET_ALERT_TIMEOUT_S)
    return timedelta(seconds=waits + posts + STALE_MARGIN_S)


def budget_alerts_resend_stale(*, now: datetime | None = None) -> list[int]:
    """Enqueue again the pending alerts older than their retries could take
    (their message was lost); a still-running delivery makes the copy a no-op."""
    cutoff = (now or timezone.now()) - alert_stale_after()
    stale = list(
        BudgetAlert.objects.filter(
            status=AlertStatus.PENDING, created_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    for alert_id in stale:
        budget_alert_enqueue(alert_id)
    return stale
