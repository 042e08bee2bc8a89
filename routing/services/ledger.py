"""Budget reservations at decision time and their settlement by usage reports.

The database enforces the limit: a reservation is a conditional UPDATE that
only succeeds while spent + reserved + estimate stays within the limit (for
budgets that block), so concurrent routing calls cannot together overspend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Subquery
from django.utils import timezone

from routing.errors import ConflictError, NotFoundError
from routing.models import (
    Budget,
    LedgerEntry,
    LedgerKind,
    RoutingDecision,
    UsageReport,
)
from routing.pipeline.budgets import HARD_LIMIT_SQL, SOFT_LIMIT_SQL
from routing.pipeline.types import BudgetStatus, HardLimitAction, Outcome
from routing.services.alerts import budget_alerts_check, budget_crosses_threshold

MICRO = Decimal("0.000001")
ZERO = Decimal(0)
RESERVE_NOTE = "estimate at decision time"
#: Budget statuses from best to worst; a status's rank is its index here.
STATUS_RANKS = (BudgetStatus.NORMAL, BudgetStatus.SOFT_LIMIT, BudgetStatus.HARD_LIMIT)


def money(value: float | Decimal) -> Decimal:
    """USD rounded to the ledger's precision (6 places)."""
    return Decimal(str(value)).quantize(MICRO, rounding=ROUND_HALF_UP)


class ReservationRefused(Exception):
    """A budget has no room left for this estimate (someone else got there first)."""

    def __init__(self, budget: str) -> None:
        super().__init__(f"budget {budget!r} has no room for this request")
        self.budget = budget


@dataclass(frozen=True)
class Reservation:
    """An estimate to hold on every enabled budget when a decision is recorded."""

    amount: Decimal
    budgets: list[Budget]

    def period_of(self, budget: Budget) -> date:
        """The period a reserve entry on ``budget`` belongs to."""
        return budget.period_start or budget.period_start_today()


def room_condition(alias: str = "", *, warn: str = "%s", amount: str = "%s") -> str:
    """SQL: ``alias``'s budget has room for an amount.

    ``warn`` and ``amount`` are the placeholders of the ``warn`` action's value
    and of the amount (positional by default). A budget whose action is
    ``warn`` always has room; a blocking one only while spent + reserved +
    amount stays within the limit *as stored now* (PostgreSQL re-checks this on
    the latest row version after a concurrent update, which is what makes the
    reservation a compare-and-set).
    """
    b = f"{alias}." if alias else ""
    return (
        f"{b}monthly_limit_usd IS NOT NULL AND ({b}hard_limit_action = {warn} OR "
        f"{b}monthly_limit_usd >= {b}spent_usd + {b}reserved_usd + {amount})"
    )


def status_rank_sql(alias: str = "") -> str:
    """SQL: the rank in ``STATUS_RANKS`` of ``alias``'s budget as stored now.

    In an UPDATE's RETURNING these are the figures *after* the update: the
    status once the reservation just made is counted (as ``budget_status``
    in the pipeline computes it, on exact decimals).
    """
    b = f"{alias}." if alias else ""
    columns = {
        "used": f"({b}spent_usd + {b}reserved_usd)",
        "limit": f"{b}monthly_limit_usd",
        "percent": f"{b}soft_limit_percent",
    }
    return (
        f"CASE WHEN {HARD_LIMIT_SQL.format(**columns)} THEN 2 "
        f"WHEN {SOFT_LIMIT_SQL.format(**columns)} THEN 1 ELSE 0 END"
    )


def budget_reserve(*, decision_id: uuid.UUID, reservation: Reservation) -> int:
    """Reserve the amount on each budget of ``reservation``; all or nothing.

    Must run inside the transaction that records the decision, so a refusal
    rolls everything back. Raises ``ReservationRefused`` naming the first
    budget without room. Returns the worst status rank (``STATUS_RANKS``) of
    the budgets once the reservation is counted. (On PostgreSQL
    ``decision_record`` does all of this in its one statement instead.)
    """
    amount = reservation.amount
    worst = 0
    for budget in reservation.budgets:
        rank = _reserve_on(budget.pk, amount)
        if rank is None:
            raise ReservationRefused(budget.name)
        worst = max(worst, rank)
    LedgerEntry.objects.bulk_create(
        LedgerEntry(
            budget=budget,
            kind=LedgerKind.RESERVE,
            amount_usd=amount,
            decision_id=decision_id,
            period_start=reservation.period_of(budget),
            note=RESERVE_NOTE,
        )
        for budget in reservation.budgets
    )
    return worst


def budget_reservation_undo(*, budget_ids: Iterable[int], amount: Decimal) -> None:
    """Take back ``amount`` reserved on each of ``budget_ids`` by a write that
    was refused as a whole (no ledger entry was made for it)."""
    Budget.objects.filter(pk__in=list(budget_ids)).update(
        reserved_usd=F("reserved_usd") - amount
    )


def _reserve_on(budget_id: int, amount: Decimal) -> int | None:
    """The compare-and-set: add ``amount`` to reserved only if there is room.

    Returns the budget's status rank after the reservation, None if refused.
    """
    table = connection.ops.quote_name(Budget._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET reserved_usd = reserved_usd + %s "
            f"WHERE id = %s AND {room_condition()} RETURNING {status_rank_sql()}",
            [amount, budget_id, HardLimitAction.WARN.value, amount],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class UsageReporter:
    """Who reports usage. A key may settle only the decisions it routed; an
    admin key (or a superuser login) any; a login session those it routed."""

    api_key_id: int | None
    client: str
    is_admin: bool = False

    def may_report(self, decision: RoutingDecision) -> bool:
        if self.is_admin:
            return True
        if self.api_key_id is not None:
            return decision.api_key_id == self.api_key_id
        return (
            decision.api_key_id is None
            and bool(self.client)
            and decision.client == self.client
        )


@dataclass(frozen=True)
class UsageResult:
    report: UsageReport
    created: bool


def _cost_from_prices(
    decision: RoutingDecision, tokens_in: int, tokens_out: int
) -> Decimal:
    """The cost at the prices ``_decision_with_prices`` read (0 without an offer)."""
    price_in: Decimal | None = getattr(decision, "price_in", None)
    price_out: Decimal | None = getattr(decision, "price_out", None)
    if price_in is None or price_out is None:
        return Decimal(0)
    return money(
        Decimal(tokens_in) / 1000 * price_in + Decimal(tokens_out) / 1000 * price_out
    )


#: The decision columns usage reads (a decision's trace and annotations can be
#: tens of kilobytes of JSON, and nothing here reads them).
USAGE_COLUMNS = ("id", "outcome", "api_key_id", "client", "backend_name", "model")


def _decision_with_prices(decision_id: uuid.UUID) -> RoutingDecision | None:
    """The decision's ``USAGE_COLUMNS``, its backend's current prices for its
    model (``price_in``/``price_out``, None without an offer) and zone
    (``zone``), and whether it reserved (``reserved``): one query."""
    from routing.models import Backend, BackendModel

    offer = BackendModel.objects.filter(
        backend__name=OuterRef("backend_name"), name=OuterRef("model")
    ).order_by("pk")
    zone = Backend.objects.filter(name=OuterRef("backend_name"))
    return (
        RoutingDecision.objects.filter(pk=decision_id)
        .only(*USAGE_COLUMNS)
        .annotate(
            price_in=Subquery(offer.values("input_cost_per_1k")[:1]),
            price_out=Subquery(offer.values("output_cost_per_1k")[:1]),
            zone=Subquery(zone.values("privacy_zone__name")[:1]),
            reserved=Exists(
                LedgerEntry.objects.filter(
                    decision_id=OuterRef("pk"), kind=LedgerKind.RESERVE
                )
            ),
        )
        .first()
    )


def decision_update_for_usage(
    *, decision_id: uuid.UUID, changes: dict[str, object]
) -> RoutingDecision | None:
    """Write ``changes`` (field -> value) to the decision and return it as
    ``_decision_with_prices`` would, after the change; on PostgreSQL in one
    round trip (``UPDATE ... RETURNING``), elsewhere in two. None if unknown."""
    if connection.vendor != "postgresql":
        RoutingDecision.objects.filter(pk=decision_id).update(**changes)
        return _decision_with_prices(decision_id)
    from routing.models import Backend, BackendModel, PrivacyZone

    qn = connection.ops.quote_name
    meta = RoutingDecision._meta
    table = qn(meta.db_table)
    fields = [meta.get_field(name) for name in changes]
    assignments = ", ".join(f"{qn(f.column)} = %s" for f in fields)
    values = [f.get_db_prep_save(changes[f.name], connection) for f in fields]
    offer = (
        f"FROM {qn(BackendModel._meta.db_table)} AS offer "
        f"JOIN {qn(Backend._meta.db_table)} AS backend "
        "ON offer.backend_id = backend.id "
        f"WHERE backend.name = {table}.backend_name AND offer.name = {table}.model "
        "ORDER BY offer.id LIMIT 1"
    )
    columns = ", ".join(
        f"{table}.{qn(meta.get_field(c).column)}" for c in USAGE_COLUMNS
    )
    sql = (
        f"UPDATE {table} SET {assignments} WHERE {table}.id = %s RETURNING {columns}, "
        f"(SELECT offer.input_cost_per_1k {offer}), "
        f"(SELECT offer.output_cost_per_1k {offer}), "
        f"(SELECT zone.name FROM {qn(Backend._meta.db_table)} AS backend "
        f"JOIN {qn(PrivacyZone._meta.db_table)} AS zone "
        "ON backend.privacy_zone_id = zone.id "
        f"WHERE backend.name = {table}.backend_name LIMIT 1), "
        f"EXISTS (SELECT 1 FROM {qn(LedgerEntry._meta.db_table)} AS entry "
        f"WHERE entry.decision_id = {table}.id AND entry.kind = %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, decision_id, LedgerKind.RESERVE.value])
        row = cursor.fetchone()
    if row is None:
        return None
    decision = RoutingDecision(**dict(zip(USAGE_COLUMNS, row, strict=False)))
    decision._state.adding = False
    decision._state.db = connection.alias
    (
        decision.price_in,
        decision.price_out,
        decision.zone,
        decision.reserved,
    ) = row[len(USAGE_COLUMNS) :]
    return decision


def usage_record(
    *,
    decision_id: uuid.UUID,
    input_tokens: int,
    output_tokens: int,
    reporter: UsageReporter | None,
    cost_usd: Decimal | None = None,
    source: str = "reported",
    latency_ms: float | None = None,
    ttft_ms: float | None = None,
    outcome: str = "",
    savepoint: bool = True,
    decision: RoutingDecision | None = None,
) -> UsageResult:
    """Record what a routed request used and settle its reservations.

    Idempotent per decision: the same report again changes nothing; a different
    report for the same decision raises ``ConflictError``. A ``reporter`` who
    may not report this decision gets the same ``NotFoundError`` as for an
    unknown one (None: an internal caller, trusted). All or nothing; a caller
    already in a transaction that fails as a whole if this raises (the proxy's
    recording) passes ``savepoint=False`` and saves two round trips, and the
    decision as ``decision_update_for_usage`` read it.
    """
    with transaction.atomic(savepoint=savepoint):
        if decision is None:
            decision = _decision_with_prices(decision_id)
        if decision is None or (
            reporter is not None and not reporter.may_report(decision)
        ):
            raise NotFoundError(
                f"No recorded decision {decision_id}.",
                fields={"decision_id": ["Unknown."]},
            )
        # The proxy (an internal caller) also serves a queue decision through its
        # fallback backend, and books that usage the same way.
        served_queue = (
            reporter is None
            and source != "reported"
            and decision.outcome == Outcome.QUEUE
        )
        if decision.outcome != Outcome.ROUTE and not served_queue:
            raise ConflictError(
                f"Decision {decision_id} was a {decision.outcome}; only routed requests "
                "report usage.",
                fields={"decision_id": [f"Outcome is {decision.outcome}."]},
            )
        cost = (
            money(cost_usd)
            if cost_usd is not None
            else _cost_from_prices(decision, input_tokens, output_tokens)
        )
        report = UsageReport(
            decision_id=decision_id,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            source=source,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            outcome=outcome,
            created_at=timezone.now(),
        )
        if not _insert_new(report):  # reported before (or by a concurrent call)
            existing = UsageReport.objects.get(decision_id=decision_id)
            figures = (existing.input_tokens, existing.output_tokens, existing.cost_usd)
            if figures == (input_tokens, output_tokens, cost):
                return UsageResult(existing, created=False)
            raise ConflictError(
                f"Usage for decision {decision_id} was already reported with different "
                f"figures ({existing.input_tokens} in, {existing.output_tokens} out, "
                f"${existing.cost_usd}).",
                fields={"decision_id": ["Already reported."]},
            ) from None
        _settle(decision=decision, cost=cost)
        return UsageResult(report, created=True)


def _insert_new(report: UsageReport) -> bool:
    """Insert ``report`` unless its decision has one already (one statement,
    no savepoint: ``ON CONFLICT DO NOTHING``); whether it was inserted."""
    fields = [f for f in UsageReport._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = [
        f.get_db_prep_save(getattr(report, f.attname), connection) for f in fields
    ]
    table = connection.ops.quote_name(UsageReport._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({connection.ops.quote_name('decision_id')}) DO NOTHING "
            f"RETURNING {connection.ops.quote_name('id')}",
            values,
        )
        row = cursor.fetchone()
    if row is None:
        return False
    report.pk = row[0]
    return True


def _settle(*, decision: RoutingDecision, cost: Decimal) -> None:
    """Release the decision's open reservations and book the real cost on every
    budget that governs it (its client, resolved model, backend and zone): a
    ``spend`` entry on each, and on those with a limit their ``spent_usd``."""
    decision_id = decision.pk
    entries = (
        list(
            LedgerEntry.objects.filter(
                decision_id=decision_id,
                kind__in=(LedgerKind.RESERVE, LedgerKind.RELEASE),
            )
        )
        if getattr(decision, "reserved", True)  # False: no ledger to read
        else []
    )
    reservations = {e.budget_id: e for e in entries if e.kind == LedgerKind.RESERVE}
    released = {e.budget_id for e in entries if e.kind == LedgerKind.RELEASE}
    zone = getattr(decision, "zone", None) or ""
    booked: list[LedgerEntry] = []
    crossed: list[int] = []
    # Every budget under its row lock, in id order as reservations take them
    # (one statement); only those with a limit get their cached total moved
    # here: a tracking-only one gets its ledger entry, and its total from the
    # periodic reconciliation (``budget_totals_reconcile``), so the usage of a
    # deployment does not write the row of ``global`` every time.
    budgets = Budget.objects.select_for_update().order_by("pk")
    for budget in budgets:
        reserve = reservations.get(budget.pk)
        release = reserve is not None and budget.pk not in released
        spend = budget.governs(
            client=decision.client,
            model=decision.model,
            backend=decision.backend_name,
            zone=zone,
        )
        if release:
            assert reserve is not None
            booked.append(
                LedgerEntry(
                    budget=budget,
                    kind=LedgerKind.RELEASE,
                    amount_usd=-reserve.amount_usd,
                    decision_id=decision_id,
                    period_start=reserve.period_start,
                    note="settled by usage report",
                )
            )
        if spend:
            booked.append(
                LedgerEntry(
                    budget=budget,
                    kind=LedgerKind.SPEND,
                    amount_usd=cost,
                    decision_id=decision_id,
                    period_start=budget.period_start or budget.period_start_today(),
                    note="usage report",
                )
            )
        freed = reserve.amount_usd if release and reserve else ZERO
        added = cost if spend and budget.monthly_limit_usd is not None else ZERO
        if freed or added:
            Budget.objects.filter(pk=budget.pk).update(
                reserved_usd=F("reserved_usd") - freed,
                spent_usd=F("spent_usd") + added,
            )
            if budget_crosses_threshold(budget, added - freed):
                crossed.append(budget.pk)
    LedgerEntry.objects.bulk_create(booked)
    if crossed:  # the periodic check would find them too, up to a beat later
        budget_alerts_check(budget_ids=crossed)
