"""Read side of the explorer: pages of decisions, the audit log, budget and chart data.

Everything here reads; nothing writes. Decision lists use keyset pagination on
``(created_at, id)`` and load only the scalar columns a table row shows, so a
page costs the same at one million rows as at one hundred.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Model, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from routing.explorer.present import ObservedBackend, ObservedBudget
from routing.models import (
    Alias,
    AuditEntry,
    Backend,
    Budget,
    DecisionExclusion,
    FallbackChain,
    LedgerEntry,
    LedgerKind,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
)
from routing.pipeline.reconcilers import DEFAULT_ORDER
from routing.selectors import backend_list, decision_list, decisions_matching_model
from routing.services.config import config_version_current

PAGE_SIZE = 50
FEED_LIMIT = 100
AUDIT_PAGE_SIZE = 25  # configuration versions per page

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
    """A recorded decision in the shape of ``RoutingResult.to_dict()`` (as the API
    shows it)."""
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


@dataclass
class FieldChange:
    """One field of a change, both values as an operator reads them."""

    field: str
    old: str
    new: str


@dataclass
class ConfigChange:
    """One object's create, update or delete in one configuration version."""

    version: int
    created_at: datetime
    actor: str
    action: str
    object_type: str
    object_name: str
    fields: list[FieldChange] = field(default_factory=list)
    url: str = ""


@dataclass
class VersionChanges:
    """Everything one configuration version changed."""

    version: int
    created_at: datetime
    changes: list[ConfigChange] = field(default_factory=list)


def _audit_queryset(filters: AuditFilters) -> QuerySet[AuditEntry]:
    queryset = AuditEntry.objects.all()
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
    return queryset


def audit_page(
    *, filters: AuditFilters, before_version: int | None = None
) -> tuple[list[VersionChanges], int | None]:
    """Configuration changes grouped by version, newest first, and the cursor
    (a version) of the next page. Pages hold ``AUDIT_PAGE_SIZE`` versions (keyset
    on the indexed ``config_version``)."""
    queryset = _audit_queryset(filters)
    if before_version is not None:
        queryset = queryset.filter(config_version__lt=before_version)
    versions = list(
        queryset.order_by("-config_version")
        .values_list("config_version", flat=True)
        .distinct()[: AUDIT_PAGE_SIZE + 1]
    )
    next_before = None
    if len(versions) > AUDIT_PAGE_SIZE:
        versions = versions[:AUDIT_PAGE_SIZE]
        next_before = versions[-1]
    entries = queryset.filter(config_version__in=versions).order_by(
        "-config_version", "id"
    )
    pages: dict[int, VersionChanges] = {}
    changes: dict[tuple[int, str, str, str], ConfigChange] = {}
    for entry in entries:
        page = pages.setdefault(
            entry.config_version,
            VersionChanges(version=entry.config_version, created_at=entry.created_at),
        )
        key = (entry.config_version, entry.action, entry.object_type, entry.object_name)
        if key not in changes:
            changes[key] = ConfigChange(
                version=entry.config_version,
                created_at=entry.created_at,
                actor=entry.actor,
                action=entry.action,
                object_type=entry.object_type,
                object_name=entry.object_name,
            )
            page.changes.append(changes[key])
        changes[key].fields.append(
            FieldChange(
                field=entry.field,
                old=entry.old_text,
                new=entry.new_text,
            )
        )
    _link_changes(list(changes.values()))
    return list(pages.values()), next_before


def _admin_change_url(model: str, pk: object) -> str:
    return reverse(f"admin:routing_{model}_change", args=[pk])


#: object type -> (model, the name that finds its row in ``object_name``).
_LINKED_TYPES: dict[str, tuple[type[Model], Callable[[str], str], str]] = {
    "backend": (Backend, lambda name: name, "name"),
    "backendmodel": (Backend, lambda name: name.split("/", 1)[0], "name"),
    "budget": (Budget, lambda name: name, "name"),
    "privacyzone": (PrivacyZone, lambda name: name, "name"),
    "alias": (Alias, lambda name: name.split(" -> ", 1)[0], "name"),
    "fallbackchain": (FallbackChain, lambda name: name.split(" -> ", 1)[0], "model"),
    "trafficpolicy": (TrafficPolicy, lambda name: name, "name"),
}


def _link_changes(changes: list[ConfigChange]) -> None:
    """Point each change at its object's page: the explorer's where there is one,
    else its admin change page; nothing once the object is gone."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for change in changes:
        if change.object_type in _LINKED_TYPES:
            _, key_of, _ = _LINKED_TYPES[change.object_type]
            wanted[change.object_type].add(key_of(change.object_name))
    for object_type, keys in wanted.items():
        model, key_of, column = _LINKED_TYPES[object_type]
        pks = dict(
            model._default_manager.filter(**{f"{column}__in": keys}).values_list(
                column, "pk"
            )
        )
        for change in changes:
            if change.object_type != object_type:
                continue
            key = key_of(change.object_name)
            if key not in pks:
                continue
            if object_type == "backend":
                change.url = reverse("explorer:backends") + f"#backend-{key}"
            elif object_type == "budget":
                change.url = reverse("explorer:budget")
            else:
                change.url = _admin_change_url(model._meta.model_name or "", pks[key])


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
