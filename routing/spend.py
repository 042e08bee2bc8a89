"""Where the money goes: recorded usage grouped by client, model, backend, zone, day.

``spend_report`` is the one read behind ``GET /api/v1/spend/`` and the
explorer's Spend page. A usage counts on the day (UTC) it was recorded; its
``client``, ``model`` (resolved) and ``backend`` are its decision's, its
``zone`` the backend's zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import OuterRef, Subquery
from django.db.models.functions import TruncDate

from routing.models import Backend, Budget, RoutingDecision, UsageReport

#: The dimensions ``group_by`` accepts, in the order rows show them.
GROUPS = ("client", "model", "backend", "zone", "day")
ZERO = Decimal(0)


@dataclass
class SpendRow:
    """Totals of one group (``keys``: group name -> value; empty for the total)."""

    keys: dict[str, Any] = field(default_factory=dict)
    cost_usd: Decimal = ZERO
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_cost_usd: Decimal = ZERO

    def add(self, other: SpendRow) -> None:
        self.cost_usd += other.cost_usd
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.estimated_cost_usd += other.estimated_cost_usd


@dataclass(frozen=True)
class SpendReport:
    """``rows`` sorted by cost descending (by day ascending when grouped by day)."""

    since: datetime
    until: datetime
    group_by: tuple[str, ...]
    rows: list[SpendRow]
    total: SpendRow


def _usage_facts(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """One row per usage in [since, until) with every dimension and figure."""
    decision = RoutingDecision.objects.filter(pk=OuterRef("decision_id"))
    return list(
        UsageReport.objects.filter(created_at__gte=since, created_at__lt=until)
        .annotate(
            client=Subquery(decision.values("client")[:1]),
            model=Subquery(decision.values("model")[:1]),
            backend=Subquery(decision.values("backend_name")[:1]),
            estimated=Subquery(decision.values("estimated_cost_usd")[:1]),
            day=TruncDate("created_at"),
        )
        .values(
            "client",
            "model",
            "backend",
            "estimated",
            "day",
            "cost_usd",
            "input_tokens",
            "output_tokens",
        )
        .order_by()
    )


def spend_report(
    *,
    since: datetime,
    until: datetime,
    group_by: Sequence[str],
    budget: Budget | None = None,
) -> SpendReport:
    """Usage recorded in [since, until) grouped by ``group_by`` (names from
    ``GROUPS``); with ``budget``, only the usage that budget's scope governs."""
    zones = dict(Backend.objects.values_list("name", "privacy_zone__name"))
    groups = tuple(group_by)
    by_key: dict[tuple[Any, ...], SpendRow] = {}
    total = SpendRow()
    for fact in _usage_facts(since, until):
        fact["zone"] = zones.get(fact["backend"] or "") or ""
        fact["client"] = fact["client"] or ""
        fact["model"] = fact["model"] or ""
        fact["backend"] = fact["backend"] or ""
        if budget is not None and not budget.governs(
            client=fact["client"],
            model=fact["model"],
            backend=fact["backend"],
            zone=fact["zone"],
        ):
            continue
        one = SpendRow(
            cost_usd=fact["cost_usd"],
            requests=1,
            input_tokens=fact["input_tokens"],
            output_tokens=fact["output_tokens"],
            estimated_cost_usd=fact["estimated"] or ZERO,
        )
        key = tuple(fact[name] for name in groups)
        row = by_key.get(key)
        if row is None:
            row = by_key[key] = SpendRow(keys=dict(zip(groups, key, strict=True)))
        row.add(one)
        total.add(one)
    return SpendReport(
        since, until, groups, _sorted(list(by_key.values()), groups), total
    )


def _sorted(rows: list[SpendRow], groups: tuple[str, ...]) -> list[SpendRow]:
    if "day" in groups:
        rows.sort(key=lambda row: -row.cost_usd)
        rows.sort(key=lambda row: _day_key(row.keys["day"]))
        return rows
    rows.sort(key=lambda row: (-row.cost_usd, tuple(str(v) for v in row.keys.values())))
    return rows


def _day_key(day: date | None) -> date:
    return day or date.min
