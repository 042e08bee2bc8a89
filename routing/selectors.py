"""Read side: querysets and plain values for the API, the explorer and services."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Backtest,
    BacktestChange,
    Budget,
    BudgetAlert,
    ConfigVersion,
    DecisionExclusion,
    Draft,
    FallbackChain,
    LedgerEntry,
    LedgerKind,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
)
from routing.pipeline.periods import budget_period

ZERO = Decimal(0)
MICRO = Decimal("0.000001")


def zone_list() -> QuerySet[PrivacyZone]:
    return PrivacyZone.objects.all()


def backend_list() -> QuerySet[Backend]:
    """Backends with their zone and served models, in one round of queries."""
    return Backend.objects.select_related("privacy_zone").prefetch_related(
        Prefetch("models", queryset=BackendModel.objects.order_by("name"))
    )


def alias_list() -> QuerySet[Alias]:
    return Alias.objects.all()


def fallback_list() -> QuerySet[FallbackChain]:
    return FallbackChain.objects.all()


def policy_list() -> QuerySet[TrafficPolicy]:
    return TrafficPolicy.objects.all()


def budget_list() -> QuerySet[Budget]:
    return Budget.objects.all()


def draft_list(*, status: str | None = None) -> QuerySet[Draft]:
    """Configuration drafts, newest first; only those in ``status`` when given."""
    drafts = Draft.objects.order_by("-created_at", "-id")
    return drafts if status is None else drafts.filter(status=status)


def budget_alert_list(*, budget: Budget) -> QuerySet[BudgetAlert]:
    """The budget's alerts (sent, failed, pending or only logged), newest first."""
    return BudgetAlert.objects.filter(budget=budget).order_by("-created_at", "-id")


#: The burn rate is the spend of the last this many days of the period.
BURN_RATE_DAYS = 7


@dataclass(frozen=True)
class BudgetForecast:
    """Where a budget is heading at its recent burn rate.

    ``exhausted_on`` is the day spent + reserved would reach the limit at that
    rate (today when it already has); None without a limit, without spend, or
    when the period ends first.
    """

    burn_rate_usd_per_day: Decimal
    projected_period_spend_usd: Decimal
    exhausted_on: date | None


def budget_forecasts(
    budgets: list[Budget], *, today: date | None = None
) -> dict[int, BudgetForecast]:
    """``BudgetForecast`` of each budget by id (one query over the ledger).

    The burn rate is the spend booked over the last ``BURN_RATE_DAYS`` days of
    the current period (or the period so far when shorter), per day; the
    projection adds that rate for each day left after today.
    """
    today = today or timezone.now().date()
    since = today - timedelta(days=BURN_RATE_DAYS - 1)
    rows = (
        LedgerEntry.objects.filter(
            budget__in=[b.pk for b in budgets],
            kind=LedgerKind.SPEND,
            created_at__gte=datetime.combine(since, time.min, tzinfo=UTC),
        )
        .values_list("budget_id", "period_start")
        .annotate(total=Sum("amount_usd"))
        .order_by()
    )
    # A period's entries are booked from its first day on: those since ``since``
    # in the current period are the spend of the burn-rate window.
    recent = {(budget_id, start): total or ZERO for budget_id, start, total in rows}
    return {
        b.pk: _forecast(
            b, recent.get((b.pk, budget_period_of(b, today)[0]), ZERO), today
        )
        for b in budgets
    }


def budget_period_of(budget: Budget, today: date) -> tuple[date, date]:
    """The budget's stored period, or the one containing ``today`` if unset."""
    if budget.period_start is not None and budget.period_end is not None:
        return budget.period_start, budget.period_end
    return budget_period(today, budget.reset_day)


def _forecast(budget: Budget, spent_in_window: Decimal, today: date) -> BudgetForecast:
    start, end = budget_period_of(budget, today)
    window_start = max(start, today - timedelta(days=BURN_RATE_DAYS - 1))
    days = max((today - window_start).days + 1, 1)
    rate = (spent_in_window / days).quantize(MICRO)
    days_left = max((end - today).days - 1, 0)
    projected = (budget.spent_usd + rate * days_left).quantize(MICRO)
    limit = budget.monthly_limit_usd
    exhausted_on = None
    if limit is not None:
        used = budget.spent_usd + budget.reserved_usd
        if used >= limit:
            exhausted_on = today
        elif rate > 0:
            day = today + timedelta(days=math.ceil((limit - used) / rate))
            exhausted_on = day if day < end else None
    return BudgetForecast(rate, projected, exhausted_on)


@dataclass(frozen=True)
class RoutingState:
    """What routing reads on every call: config versions and every budget."""

    version: int
    state_version: int
    budgets: list[Budget]


_BUDGET_COLUMNS = (
    "id",
    "name",
    "monthly_limit_usd",
    "soft_limit_percent",
    "hard_limit_action",
    "reset_day",
    "period_start",
    "period_end",
    "spent_usd",
    "reserved_usd",
    "scope",
    "alert_thresholds",
)


def _budget_from_row(values: tuple[Any, ...]) -> Budget:
    fields: dict[str, Any] = dict(zip(_BUDGET_COLUMNS, values, strict=True))
    for name in ("monthly_limit_usd", "spent_usd", "reserved_usd"):
        if fields[name] is not None:
            fields[name] = Decimal(str(fields[name]))
    for name in ("period_start", "period_end"):
        fields[name] = Budget._meta.get_field(name).to_python(fields[name])
    for name in ("scope", "alert_thresholds"):
        fields[name] = _JSON_FIELDS[name].from_db_value(fields[name], None, connection)
    return Budget(**fields)


_JSON_FIELDS = {
    name: Budget._meta.get_field(name) for name in ("scope", "alert_thresholds")
}


def routing_state() -> RoutingState:
    """Config versions and every budget in one round trip.

    Plain SQL because it runs on every route call (the ORM spent more time
    compiling these two queries than the database spent answering them).
    """
    quote = connection.ops.quote_name
    budget_columns = ", ".join(f"b.{quote(c)}" for c in _BUDGET_COLUMNS)
    sql = (
        f"SELECT v.version, v.state_version, {budget_columns} "
        f"FROM {quote(ConfigVersion._meta.db_table)} v "
        f"LEFT JOIN {quote(Budget._meta.db_table)} b "
        "ON true WHERE v.id = 1 ORDER BY b.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    if not rows:
        return RoutingState(0, 0, [])
    budgets = [_budget_from_row(row[2:]) for row in rows if row[2] is not None]
    return RoutingState(int(rows[0][0]), int(rows[0][1]), budgets)


def decision_list() -> QuerySet[RoutingDecision]:
    """Recorded decisions, newest first."""
    return RoutingDecision.objects.order_by("-created_at", "-id")


def decisions_matching_model(
    queryset: QuerySet[RoutingDecision], model: str
) -> QuerySet[RoutingDecision]:
    """Decisions whose requested or resolved model is ``model``."""
    return queryset.filter(Q(requested_model=model) | Q(model=model))


def decisions_excluded_by(
    queryset: QuerySet[RoutingDecision], reconciler: str
) -> QuerySet[RoutingDecision]:
    """Decisions in which ``reconciler`` excluded at least one backend.

    An exclusion row has its decision's ``created_at``: matching it too lets
    PostgreSQL probe only the exclusion partition of the decision's period.
    """
    exclusions = DecisionExclusion.objects.filter(
        decision=OuterRef("pk"),
        created_at=OuterRef("created_at"),
        reconciler=reconciler,
    )
    return queryset.filter(Exists(exclusions))


def backtest_list() -> QuerySet[Backtest]:
    """Backtests, newest first."""
    return Backtest.objects.order_by("-created_at", "-id")


def backtest_change_list(
    *, backtest: Backtest, outcome_change: str | None = None, backend: str | None = None
) -> QuerySet[BacktestChange]:
    """A backtest's changed decisions, newest first; only those whose outcome
    changed as ``outcome_change`` reads (``route->reject``) and whose backend
    before or after is ``backend``, when given."""
    changes = BacktestChange.objects.filter(backtest=backtest).order_by(
        "-created_at", "-id"
    )
    if outcome_change is not None:
        changes = changes.filter(outcome_change=outcome_change)
    if backend is not None:
        changes = changes.filter(Q(before_backend=backend) | Q(after_backend=backend))
    return changes


@dataclass(frozen=True)
class BacktestChangePage:
    """One page of a backtest's changed decisions and the next page's cursor
    (``(created_at, id)`` of its last row; None: the last page)."""

    rows: list[BacktestChange]
    next_cursor: tuple[datetime, int] | None


def backtest_change_page(
    *,
    backtest: Backtest,
    outcome_change: str | None = None,
    backend: str | None = None,
    cursor: tuple[datetime, int] | None = None,
    limit: int = 50,
) -> BacktestChangePage:
    """``backtest_change_list`` a page at a time, strictly older than ``cursor``."""
    changes = backtest_change_list(
        backtest=backtest, outcome_change=outcome_change, backend=backend
    )
    if cursor is not None:
        created_at, change_id = cursor
        changes = changes.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=change_id),
            created_at__lte=created_at,
        )
    rows = list(changes[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = (rows[-1].created_at, rows[-1].pk)
    return BacktestChangePage(rows=rows, next_cursor=next_cursor)
