"""Budget bookkeeping that runs without an operator: rollover, expiry, drift.

Everything here is idempotent and safe on several workers at once:

- the period rollover is a compare-and-set (``UPDATE ... WHERE id=? AND
  period_start=<old>``) made under the budget's row lock: of two racing
  reconciliations (or two beats) exactly one moves the period, and the CAS
  alone would still hold where row locks are no-ops (SQLite serialises writers);
- an expired reservation is released by inserting its ``release`` entry, which
  the ledger's unique constraint allows once per (budget, decision), inside a
  savepoint: a racing usage settlement or second worker makes it a no-op;
- cached totals are recomputed from the ledger under the budget's row lock, so
  a routing call that holds the lock (its ``reserved_usd + x`` update) is either
  fully counted or applied on top of the corrected value.

Locks are always taken in the same order as the routing API's ledger writes:
the budget row first, then the ledger insert.

None of this is configuration: rows change with ``queryset.update`` and the
config version does not move.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, QuerySet, Sum
from django.utils import timezone

from routing.models import (
    Backend,
    Budget,
    LedgerEntry,
    LedgerKind,
    RoutingDecision,
    UsageReport,
)
from routing.pipeline.periods import budget_period

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
RELEASE_BATCH_SIZE = 500


@dataclass(frozen=True)
class BudgetReconcileResult:
    """What one reconciliation of one budget changed."""

    budget_id: int
    rolled_over: bool = False
    released: int = 0
    spent_drift_usd: Decimal = ZERO
    reserved_drift_usd: Decimal = ZERO


def _today(now: datetime) -> date:
    return now.astimezone(UTC).date()


@transaction.atomic
def budget_period_rollover(*, budget_id: int, today: date) -> bool:
    """Move the budget to the period containing ``today`` if its period has ended.

    Also sets a missing period. Returns True only for the caller whose
    compare-and-set won; a racing caller (or a second beat) gets False and
    changes nothing. The new period's ``spent_usd`` is recomputed from the ledger.
    """
    row = (
        Budget.objects.select_for_update()
        .filter(pk=budget_id)
        .values("period_start", "period_end", "reset_day")
        .first()
    )
    if row is None:
        return False
    old_start, old_end = row["period_start"], row["period_end"]
    if old_start is not None and old_end is not None and today < old_end:
        return False
    new_start, new_end = budget_period(today, row["reset_day"])
    if old_start == new_start and old_end == new_end:
        return False
    claim = Budget.objects.filter(pk=budget_id)
    claim = (
        claim.filter(period_start__isnull=True)
        if old_start is None
        else claim.filter(period_start=old_start)
    )
    won = claim.update(
        period_start=new_start,
        period_end=new_end,
        spent_usd=_spent_in_period(budget_id=budget_id, period_start=new_start),
    )
    if won:
        logger.info(
            "Budget %s: period %s..%s rolled over to %s..%s",
            budget_id,
            old_start,
            old_end,
            new_start,
            new_end,
        )
    return bool(won)


def _spent_in_period(*, budget_id: int, period_start: date) -> Decimal:
    total = LedgerEntry.objects.filter(
        budget_id=budget_id, kind=LedgerKind.SPEND, period_start=period_start
    ).aggregate(total=Sum("amount_usd"))["total"]
    return total if total is not None else ZERO


def _reserved_total(*, budget_id: int) -> Decimal:
    total = LedgerEntry.objects.filter(
        budget_id=budget_id, kind__in=[LedgerKind.RESERVE, LedgerKind.RELEASE]
    ).aggregate(total=Sum("amount_usd"))["total"]
    return total if total is not None else ZERO


def reservation_list_expired(
    *, budget_id: int, now: datetime, ttl_seconds: int
) -> QuerySet[LedgerEntry]:
    """``reserve`` entries older than the TTL that no ``release`` has answered yet."""
    released = LedgerEntry.objects.filter(
        budget_id=OuterRef("budget_id"),
        decision_id=OuterRef("decision_id"),
        kind=LedgerKind.RELEASE,
    )
    return (
        LedgerEntry.objects.filter(
            budget_id=budget_id,
            kind=LedgerKind.RESERVE,
            decision_id__isnull=False,
            created_at__lt=now - timedelta(seconds=ttl_seconds),
        )
        .filter(~Exists(released))
        .order_by("created_at", "id")
    )


def _release_batch(
    *, budget_id: int, now: datetime, ttl_seconds: int
) -> tuple[int, bool]:
    """Release up to one batch of expired reservations; (released, more left)."""
    with transaction.atomic():
        # Budget row first, like the routing API: no lock-order deadlock.
        if not Budget.objects.select_for_update().filter(pk=budget_id).exists():
            return 0, False
        batch = list(
            reservation_list_expired(
                budget_id=budget_id, now=now, ttl_seconds=ttl_seconds
            )[:RELEASE_BATCH_SIZE]
        )
        released = ZERO
        count = 0
        for reserve in batch:
            try:
                with transaction.atomic():
                    LedgerEntry.objects.create(
                        budget_id=budget_id,
                        kind=LedgerKind.RELEASE,
                        amount_usd=-reserve.amount_usd,
                        decision_id=reserve.decision_id,
                        period_start=reserve.period_start,
                        note=f"expired after {ttl_seconds} s",
                    )
            except IntegrityError:
                continue  # settled or released by someone else meanwhile
            released += reserve.amount_usd
            count += 1
        if count:
            Budget.objects.filter(pk=budget_id).update(
                reserved_usd=F("reserved_usd") - released
            )
            logger.info(
                "Budget %s: released %d expired reservation(s), %s USD",
                budget_id,
                count,
                released,
            )
        return count, len(batch) == RELEASE_BATCH_SIZE


def reservation_release_expired(
    *, budget_id: int, now: datetime | None = None, ttl_seconds: int | None = None
) -> int:
    """Release every reservation older than the TTL; return how many were released.

    Each one gets a ``release`` entry (note ``expired after N s``) and leaves
    ``reserved_usd`` in the same transaction. Batches of ``RELEASE_BATCH_SIZE``
    keep each transaction short.
    """
    now = now or timezone.now()
    ttl = ttl_seconds or settings.NEXUS_RESERVATION_TTL_SECONDS
    total = 0
    more = True
    while more:
        count, more = _release_batch(budget_id=budget_id, now=now, ttl_seconds=ttl)
        total += count
        more = more and count > 0
    return total


@transaction.atomic
def budget_totals_reconcile(*, budget_id: int) -> tuple[Decimal, Decimal]:
    """Recompute ``spent_usd`` and ``reserved_usd`` from the ledger; fix any drift.

    Returns the drift that was corrected (cached minus ledger), zero when the
    cached totals were right. A budget without a limit has its ``spent_usd``
    brought up to date here (settlements only append to its ledger), which is
    not drift.
    """
    budget = Budget.objects.select_for_update().filter(pk=budget_id).first()
    if budget is None:
        return ZERO, ZERO
    spent = (
        _spent_in_period(budget_id=budget_id, period_start=budget.period_start)
        if budget.period_start is not None
        else ZERO
    )
    reserved = _reserved_total(budget_id=budget_id)
    spent_drift = budget.spent_usd - spent
    reserved_drift = budget.reserved_usd - reserved
    if budget.monthly_limit_usd is None and not reserved_drift:
        # Tracking only: settlements book its ledger, not its cached total
        # (ledger._settle); refreshing that total here is routine, not drift.
        if spent_drift:
            Budget.objects.filter(pk=budget_id).update(spent_usd=spent)
        return ZERO, ZERO
    if spent_drift or reserved_drift:
        Budget.objects.filter(pk=budget_id).update(
            spent_usd=spent, reserved_usd=reserved
        )
        logger.warning(
            "Budget %s drifted from its ledger: spent %s -> %s, reserved %s -> %s",
            budget.name,
            budget.spent_usd,
            spent,
            budget.reserved_usd,
            reserved,
        )
    return spent_drift, reserved_drift


def budget_reconcile(
    *, budget_id: int, now: datetime | None = None
) -> BudgetReconcileResult:
    """Roll the period over if due, release expired reservations, fix drift."""
    now = now or timezone.now()
    rolled_over = budget_period_rollover(budget_id=budget_id, today=_today(now))
    released = reservation_release_expired(budget_id=budget_id, now=now)
    spent_drift, reserved_drift = budget_totals_reconcile(budget_id=budget_id)
    return BudgetReconcileResult(
        budget_id=budget_id,
        rolled_over=rolled_over,
        released=released,
        spent_drift_usd=spent_drift,
        reserved_drift_usd=reserved_drift,
    )


def budget_reconcile_all(*, now: datetime | None = None) -> list[BudgetReconcileResult]:
    """Reconcile every budget, enabled or not (disabled ones keep their periods too)."""
    now = now or timezone.now()
    ids = list(Budget.objects.order_by("pk").values_list("pk", flat=True))
    return [budget_reconcile(budget_id=budget_id, now=now) for budget_id in ids]


RECOUNT_BATCH_SIZE = 2000


@transaction.atomic
def budget_spend_recount(*, budget_id: int) -> Decimal:
    """Book on the budget the spend of its current period so far, as its scope
    governs it now, and return it.

    Runs when a budget is created or its scope changes, so a budget set up in
    the middle of a period counts the period so far. The period's ``spend``
    entries on this budget are replaced by one per usage recorded since the
    period began that the scope governs (the zone is the backend's zone now).
    Holds the budget's row lock, like every settlement: a usage recorded
    meanwhile is booked by its own settlement, after this.
    """
    budget = Budget.objects.select_for_update().filter(pk=budget_id).first()
    if budget is None:
        return ZERO
    start = budget.period_start or budget.period_start_today()
    LedgerEntry.objects.filter(
        budget_id=budget_id, kind=LedgerKind.SPEND, period_start=start
    ).delete()
    zones = dict(Backend.objects.values_list("name", "privacy_zone__name"))
    usage = (
        UsageReport.objects.filter(
            created_at__gte=datetime.combine(start, time.min, tzinfo=UTC)
        )
        .order_by("pk")
        .values_list("decision_id", "cost_usd", "created_at")
    )
    batch: list[tuple[uuid.UUID, Decimal, datetime]] = []

    def book() -> None:
        decisions = RoutingDecision.objects.filter(
            pk__in=[decision_id for decision_id, _, _ in batch]
        ).values_list("pk", "client", "model", "backend_name")
        seen = {pk: (client, model, name) for pk, client, model, name in decisions}
        LedgerEntry.objects.bulk_create(
            (
                LedgerEntry(
                    budget_id=budget_id,
                    kind=LedgerKind.SPEND,
                    amount_usd=cost,
                    decision_id=decision_id,
                    period_start=start,
                    note="counted when the budget or its scope was set",
                    created_at=recorded_at,
                )
                for decision_id, cost, recorded_at in batch
                if decision_id in seen
                and budget.governs(
                    client=seen[decision_id][0],
                    model=seen[decision_id][1],
                    backend=seen[decision_id][2],
                    zone=zones.get(seen[decision_id][2]) or "",
                )
            ),
            ignore_conflicts=True,
        )
        batch.clear()

    for row in usage.iterator(chunk_size=RECOUNT_BATCH_SIZE):
        batch.append(row)
        if len(batch) == RECOUNT_BATCH_SIZE:
            book()
    book()
    spent = _spent_in_period(budget_id=budget_id, period_start=start)
    Budget.objects.filter(pk=budget_id).update(spent_usd=spent)
    return spent
