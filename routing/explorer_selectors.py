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
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Model, Prefetch, Q, QuerySet
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from routing.explorer.present import ObservedBackend, ObservedBudget
from routing.models import (
    Alias,
    AuditEntry,
    Backend,
    Budget,
    BudgetAlert,
    DecisionExclusion,
    FallbackChain,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
)
from routing.pipeline.reconcilers import DEFAULT_ORDER
from routing.selectors import (
    BudgetForecast,
    backend_list,
    budget_forecasts,
    decision_list,
    decisions_excluded_by,
    decisions_matching_model,
)
from routing.services.config import config_version_current
from routing.services.decision_templates import decision_view
from routing.services.drafts import RESOURCE_MODELS, lookup_field
from routing.spend import SpendRow, spend_report

PAGE_SIZE = 50
FEED_LIMIT = 100
AUDIT_PAGE_SIZE = 25  # configuration versions per page
ZERO = Decimal(0)

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
    "sample",
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
    sample: bool | None = None  # None: real and sample decisions alike

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
                self.sample,
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
        queryset = decisions_excluded_by(queryset, filters.excluded_by)
    if filters.since is not None:
        queryset = queryset.filter(created_at__gte=filters.since)
    if filters.until is not None:
        queryset = queryset.filter(created_at__lt=filters.until)
    if filters.config_version is not None:
        queryset = queryset.filter(config_version=filters.config_version)
    if filters.sample is not None:
        # Each value has a partial index on (-created_at, -id) of its own.
        queryset = queryset.filter(sample=filters.sample)
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
        # The redundant ``created_at <= cursor`` bounds the index scan (and
        # the partitions read); the OR alone would be a filter on every row.
        queryset = queryset.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=decision_id),
            created_at__lte=created_at,
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
    }
    view = decision_view(decision)  # either stored form
    details = view.pop("details")
    payload.update(view)
    payload.update(details)
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
                change.url = reverse("explorer:spend") + f"#budget-{key}"
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


# -- spend and budgets -----------------------------------------------------------

#: Dimensions the spend chart stacks by, and the tables of top spenders.
SPEND_DIMENSIONS = ("model", "client", "backend")
#: How many named series a chart stacks (the rest is summed as ``other``).
STACK_TOP = 10
#: Rows of each top-spenders table.
TOP_ROWS = 10
#: Alerts shown per budget.
RECENT_ALERTS = 5
OTHER = "other"


@dataclass(frozen=True)
class DayAccuracy:
    """One day's estimates against the real cost of the same usages."""

    day: date
    estimated: Decimal
    real: Decimal
    requests: int

    @property
    def error_percent(self) -> Decimal | None:
        """(estimated - real) / real, in percent; None when nothing was spent."""
        return _error_percent(self.estimated, self.real)


def _error_percent(estimated: Decimal, real: Decimal) -> Decimal | None:
    if not real:
        return None
    return ((estimated - real) / real * 100).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class SpendOverview:
    """What the Spend page shows for a window: the per-day stack, the top
    spenders of each dimension, and estimates against real cost per day."""

    since: datetime
    until: datetime
    axis: list[date]
    stack: str
    series: dict[str, list[Decimal]]
    tops: dict[str, list[SpendRow]]
    accuracy: list[DayAccuracy]
    total: SpendRow

    @property
    def error_percent(self) -> Decimal | None:
        return _error_percent(self.total.estimated_cost_usd, self.total.cost_usd)


def spend_overview(*, first: date, last: date, stack: str) -> SpendOverview:
    """Usage recorded from ``first`` to ``last`` (whole UTC days, both included).

    One ``spend_report`` grouped by day, client, model and backend; every table
    and chart of the page is a sum over its rows.
    """
    since = datetime.combine(first, time.min, tzinfo=UTC)
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    report = spend_report(since=since, until=until, group_by=("day", *SPEND_DIMENSIONS))
    axis = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    index = {day: i for i, day in enumerate(axis)}
    by_dimension: dict[str, dict[str, SpendRow]] = {d: {} for d in SPEND_DIMENSIONS}
    per_day = [SpendRow(keys={"day": day}) for day in axis]
    for row in report.rows:
        position = index.get(row.keys["day"])
        if position is not None:
            per_day[position].add(row)
        for dimension in SPEND_DIMENSIONS:
            name = row.keys[dimension] or ""
            group = by_dimension[dimension].get(name)
            if group is None:
                group = by_dimension[dimension][name] = SpendRow(keys={dimension: name})
            group.add(row)
    tops = {
        dimension: sorted(
            groups.values(), key=lambda r: (-r.cost_usd, -r.requests, str(r.keys))
        )
        for dimension, groups in by_dimension.items()
    }
    named = [row.keys[stack] for row in tops[stack][:STACK_TOP] if row.cost_usd > 0]
    series: dict[str, list[Decimal]] = {name: [ZERO] * len(axis) for name in named}
    for row in report.rows:
        position = index.get(row.keys["day"])
        if position is None or not row.cost_usd:
            continue
        name = row.keys[stack] if row.keys[stack] in series else OTHER
        series.setdefault(name, [ZERO] * len(axis))[position] += row.cost_usd
    return SpendOverview(
        since=since,
        until=until,
        axis=axis,
        stack=stack,
        series=series,
        tops={dimension: rows[:TOP_ROWS] for dimension, rows in tops.items()},
        accuracy=[
            DayAccuracy(day, row.estimated_cost_usd, row.cost_usd, row.requests)
            for day, row in zip(axis, per_day, strict=True)
        ],
        total=report.total,
    )


@dataclass(frozen=True)
class BudgetCard:
    """One budget as the Spend page shows it: numbers, forecast, recent alerts."""

    budget: Budget
    forecast: BudgetForecast
    alerts: list[BudgetAlert]

    @property
    def limit(self) -> Decimal | None:
        return self.budget.monthly_limit_usd

    @property
    def soft_mark(self) -> Decimal | None:
        limit = self.budget.monthly_limit_usd
        return None if limit is None else limit * self.budget.soft_limit_percent / 100

    @property
    def status(self) -> str:
        return str(self.budget.status)


def budget_cards(
    *, name: str | None = None, today: date | None = None
) -> list[BudgetCard]:
    """Every budget (or the one named) with its forecast and latest alerts."""
    budgets = list(Budget.objects.order_by("name"))
    if name is not None:
        budgets = [b for b in budgets if b.name == name]
    forecasts = budget_forecasts(budgets, today=today)
    alerts: dict[int, list[BudgetAlert]] = defaultdict(list)
    for budget in budgets:
        alerts[budget.pk] = list(
            BudgetAlert.objects.filter(budget=budget).order_by("-created_at", "-id")[
                :RECENT_ALERTS
            ]
        )
    return [BudgetCard(b, forecasts[b.pk], alerts[b.pk]) for b in budgets]


def budget_get(*, name: str) -> Budget | None:
    return Budget.objects.filter(name=name).first()


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


def config_object_get(*, resource: str, name: str) -> Model | None:
    """The configuration object a draft change addresses (``resource`` as the
    drafts API names it: ``zones``, ``backends``, ...), or None."""
    model = RESOURCE_MODELS[resource]
    found: Model | None = model._default_manager.filter(
        **{lookup_field(resource): name}
    ).first()
    return found


def config_names(*, resource: str) -> list[str]:
    """The names of ``resource``'s objects, sorted (fallback chains: models)."""
    field_name = lookup_field(resource)
    model = RESOURCE_MODELS[resource]
    return sorted(model._default_manager.values_list(field_name, flat=True))
