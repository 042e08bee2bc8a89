"""Read side of the explorer: pages of decisions, the audit log, budget and chart data.

Everything here reads; nothing writes. Decision lists use keyset pagination on
``(created_at, id)`` and load only the scalar columns a table row shows, so a
page costs the same at one million rows as at one hundred.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from routing.explorer.present import ObservedBackend, ObservedBudget
from routing.models import (
    AuditEntry,
    Backend,
    Budget,
    DecisionExclusion,
    LedgerEntry,
    LedgerKind,
    RoutingDecision,
)
from routing.pipeline.reconcilers import DEFAULT_ORDER
from routing.selectors import backend_list, decision_list, decisions_matching_model
from routing.services.config import config_version_current

PAGE_SIZE = 50
FEED_LIMIT = 100
AUDIT_PAGE_SIZE = 100

#: Columns a decision row in a table needs (the JSON columns stay in the database).
ROW_COLUMNS = (
    "id",
    "created_at",
    "request_id",
    "outcome",
    "error_type",
    "requested_model",
    "model",
    "backend_name",
    "score",
    "estimated_cost_usd",
    "fallback_used",
    "pipeline_duration_us",
    "config_version",
)

Cursor = tuple[datetime, uuid.UUID]


@dataclass(frozen=True)
class DecisionFilters:
    """Validated filters of the decisions page (empty values mean "any")."""

    outcome: str = ""
    model: str = ""
    backend: str = ""
    excluded_by: str = ""
    since: datetime | None = None
    until: datetime | None = None
    request_id: str = ""
    config_version: int | None = None

    @property
    def active(self) -> bool:
        return any(
            value not in ("", None)
            for value in (
                self.outcome,
                self.model,
                self.backend,
                self.excluded_by,
                self.since,
                self.until,
                self.request_id,
                self.config_version,
            )
        )


@dataclass(frozen=True)
class DecisionPage:
    rows: list[RoutingDecision]
    next_cursor: Cursor | None
    newest: datetime | None


def reconciler_names() -> tuple[str, ...]:
    """Reconciler names for the "excluded by" filter (pipeline order)."""
    return tuple(DEFAULT_ORDER)


def _filtered(filters: DecisionFilters) -> QuerySet[RoutingDecision]:
    queryset = decision_list()
    if filters.request_id:
        match = Q(request_id=filters.request_id)
        with contextlib.suppress(ValueError):
            match |= Q(id=uuid.UUID(filters.request_id))
        queryset = queryset.filter(match)
    if filters.outcome:
        queryset = queryset.filter(outcome=filters.outcome)
    if filters.model:
        queryset = decisions_matching_model(queryset, filters.model)
    if filters.backend:
        queryset = queryset.filter(backend_name=filters.backend)
    if filters.excluded_by:
        # One exclusion row per (decision, reconciler), so the join adds no
        # duplicates; the row's created_at equals the decision's.
        queryset = queryset.filter(exclusions__reconciler=filters.excluded_by)
    if filters.since is not None:
        queryset = queryset.filter(created_at__gte=filters.since)
    if filters.until is not None:
        queryset = queryset.filter(created_at__lt=filters.until)
    if filters.config_version is not None:
        queryset = queryset.filter(config_version=filters.config_version)
    return queryset


def _rows(queryset: QuerySet[RoutingDecision], limit: int) -> list[RoutingDecision]:
    return list(
        queryset.only(*ROW_COLUMNS).prefetch_related(
            Prefetch(
                "exclusions",
                queryset=DecisionExclusion.objects.only(
                    "decision_id", "reconciler", "excluded_count"
                ).order_by("id"),
            )
        )[:limit]
    )


def decision_page(
    *, filters: DecisionFilters, cursor: Cursor | None = None, limit: int = PAGE_SIZE
) -> DecisionPage:
    """One page of decisions, newest first, strictly older than ``cursor``."""
    queryset = _filtered(filters)
    if cursor is not None:
        created_at, decision_id = cursor
        queryset = queryset.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=decision_id)
        )
    rows = _rows(queryset, limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = (rows[-1].created_at, rows[-1].id)
    newest = rows[0].created_at if rows and cursor is None else None
    return DecisionPage(rows=rows, next_cursor=next_cursor, newest=newest)


def decision_feed(
    *, filters: DecisionFilters, after: datetime
) -> list[RoutingDecision]:
    """Decisions matching ``filters`` recorded strictly after ``after``, newest first."""
    return _rows(_filtered(filters).filter(created_at__gt=after), FEED_LIMIT)


def decision_get(*, decision_id: uuid.UUID) -> RoutingDecision | None:
    return RoutingDecision.objects.filter(pk=decision_id).first()


def decision_payload(decision: RoutingDecision) -> dict[str, Any]:
    """A recorded decision in the shape ``route_request`` returns (as the API shows it)."""
    payload: dict[str, Any] = {
        "outcome": decision.outcome,
        "requested_model": decision.requested_model,
        "model": decision.model,
        "score": decision.score,
        "reason": decision.reason,
        "estimated_cost_usd": (
            float(decision.estimated_cost_usd)
            if decision.estimated_cost_usd is not None
            else None
        ),
        "fallback_used": decision.fallback_used,
        "pipeline_duration_us": decision.pipeline_duration_us,
        "requirements": decision.requirements or {},
        "constraints": decision.constraints or {},
        "annotations": decision.annotations or {},
        "trace": decision.trace or [],
        "warnings": decision.warnings or [],
    }
    payload.update(decision.details or {})
    return payload


# -- configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    object_type: str = ""
    search: str = ""
    version: int | None = None


def audit_page(
    *, filters: AuditFilters, before_id: int | None = None
) -> tuple[list[AuditEntry], int | None]:
    """Audit entries newest first (keyset on id), and the cursor of the next page."""
    queryset = AuditEntry.objects.order_by("-id")
    if filters.actor:
        queryset = queryset.filter(actor=filters.actor)
    if filters.object_type:
        queryset = queryset.filter(object_type=filters.object_type)
    if filters.search:
        queryset = queryset.filter(
            Q(object_name__icontains=filters.search) | Q(field=filters.search)
        )
    if filters.version is not None:
        queryset = queryset.filter(config_version=filters.version)
    if before_id is not None:
        queryset = queryset.filter(id__lt=before_id)
    rows = list(queryset[: AUDIT_PAGE_SIZE + 1])
    if len(rows) > AUDIT_PAGE_SIZE:
        return rows[:AUDIT_PAGE_SIZE], rows[AUDIT_PAGE_SIZE - 1].id
    return rows, None


def audit_object_types() -> list[str]:
    return list(
        AuditEntry.objects.order_by("object_type")
        .values_list("object_type", flat=True)
        .distinct()
    )


def audit_since(*, version: int, limit: int = 50) -> tuple[list[AuditEntry], int]:
    """Configuration edits made after ``version`` (newest first) and their count."""
    queryset = AuditEntry.objects.filter(config_version__gt=version).order_by("-id")
    return list(queryset[:limit]), queryset.count()


def config_version() -> int:
    return config_version_current()


def observed_state(
    *, names: set[str]
) -> tuple[dict[str, ObservedBackend], list[ObservedBudget]]:
    """Today's probed and traffic state of the named backends, and every enabled
    budget's spend (what a re-run compares against the recorded decision)."""
    backends = {
        b.name: ObservedBackend(
            health=b.health,
            latency_ema_ms=b.latency_ema_ms,
            error_rate=b.error_rate,
            pending_requests=b.pending_requests,
            max_concurrency=b.max_concurrency,
        )
        for b in Backend.objects.filter(name__in=names).only(
            "name",
            "health",
            "latency_ema_ms",
            "error_rate",
            "pending_requests",
            "max_concurrency",
        )
    }
    budgets = [
        ObservedBudget(
            name=b.name,
            spent_usd=float(b.spent_usd),
            limit_usd=float(b.monthly_limit_usd or 0),
        )
        for b in Budget.objects.filter(monthly_limit_usd__isnull=False).order_by("id")
    ]
    return backends, budgets


# -- backends ----------------------------------------------------------------------


def backend_table() -> list[Backend]:
    return list(backend_list().order_by("priority", "name"))


def backend_get(*, name: str) -> Backend | None:
    return backend_list().filter(name=name).first()


# -- budget ------------------------------------------------------------------------


@dataclass
class BudgetOverview:
    """One budget's numbers for the spend chart."""

    budget: Budget
    period_start: date
    period_end: date
    spent: Decimal
    reserved: Decimal
    limit: Decimal | None
    soft_mark: Decimal | None
    daily_spend: list[tuple[date, Decimal]] = field(default_factory=list)
    projected: Decimal = Decimal(0)
    reset_date: date | None = None

    @property
    def status(self) -> str:
        return str(self.budget.status)


def budget_overviews(*, today: date | None = None) -> list[BudgetOverview]:
    """Every budget with its period's spend per day and a linear projection."""
    today = today or timezone.now().date()
    result = []
    for budget in Budget.objects.order_by("name"):
        start = budget.period_start or budget.period_start_today()
        end = budget.period_end or (start + timedelta(days=30))
        per_day: dict[date, Decimal] = defaultdict(Decimal)
        rows = (
            LedgerEntry.objects.filter(
                budget=budget, kind=LedgerKind.SPEND, period_start=start
            )
            .annotate(day=TruncDate("created_at"))
            .values("day")
            .annotate(total=Sum("amount_usd"))
            .order_by("day")
        )
        for row in rows:
            per_day[row["day"]] += row["total"] or Decimal(0)
        days_elapsed = max((min(today, end) - start).days + 1, 1)
        days_total = max((end - start).days, 1)
        spent = budget.spent_usd
        projected = spent / days_elapsed * days_total
        limit = budget.monthly_limit_usd
        result.append(
            BudgetOverview(
                budget=budget,
                period_start=start,
                period_end=end,
                spent=spent,
                reserved=budget.reserved_usd,
                limit=limit,
                soft_mark=(
                    limit * budget.soft_limit_percent / 100
                    if limit is not None
                    else None
                ),
                daily_spend=sorted(per_day.items()),
                projected=projected,
                reset_date=end,
            )
        )
    return result


def decisions_per_day(
    *, days: int = 14, today: date | None = None
) -> tuple[list[date], dict[str, list[int]]]:
    """Decision counts per day and outcome over the last ``days`` days (UTC)."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    rows = (
        RoutingDecision.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    axis = [first + timedelta(days=i) for i in range(days)]
    series: dict[str, list[int]] = {o: [0] * days for o in ("route", "queue", "reject")}
    for row in rows:
        index = (row["day"] - first).days
        if 0 <= index < days:
            series.setdefault(row["outcome"], [0] * days)[index] += row["n"]
    return axis, series
