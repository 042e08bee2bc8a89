"""Where the money goes: recorded usage grouped by client, model, backend, zone, day.

``spend_report`` is the one read behind ``GET /api/v1/spend/`` and the
explorer's Spend page. A usage counts on the day (UTC) it was recorded; its
``client``, ``model`` (resolved) and ``backend`` are its decision's, its
``zone`` the backend's zone.

The figures come from one SQL statement (one snapshot, so a rollup committing
meanwhile cannot make a report count a usage twice or not at all): the
``SpendDaily`` rows of the whole UTC days inside [since, until), plus the raw
usage rows of the partial days at the edges, plus the raw rows of the whole days
not rolled up yet (the tail, found through a partial index). Each usage is in
exactly one of those, so the report is the same with or without the rollup
(``use_rollup=False`` reads every usage raw). The rollup keeps a backend's zone
as it was when the usage was rolled up; raw rows take its current zone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection

from routing.models import Budget, SpendDaily, UsageReport
from routing.models.budgets import scope_from_json
from routing.pipeline.types import EVERYTHING
from routing.services.spend_rollup import dimension_sql, facts_joins

#: The dimensions ``group_by`` accepts, in the order rows show them.
GROUPS = ("client", "model", "backend", "zone", "day")
ZERO = Decimal(0)
MICRO = Decimal("0.000001")


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


def _whole_days(since: datetime, until: datetime) -> tuple[date, date] | None:
    """The UTC days [first, last) that lie wholly inside [since, until), if any."""
    first = since.date()
    if since.time() != time.min:
        if first == date.max:
            return None
        first += timedelta(days=1)
    last = until.date()
    return (first, last) if first < last else None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def spend_sql(
    *, since: datetime, until: datetime, keys: Sequence[str], use_rollup: bool = True
) -> tuple[str, list[Any]]:
    """The statement summing usage in [since, until) (UTC, since < until) per
    ``keys``."""
    ops = connection.ops
    dims = dimension_sql("u")
    raw_columns = ", ".join(f"{dims[k]} AS {k}" for k in keys)
    raw = (
        f"SELECT {raw_columns}, u.cost_usd AS cost_usd, 1 AS requests, "
        "u.input_tokens AS input_tokens, u.output_tokens AS output_tokens, "
        "COALESCE(d.estimated_cost_usd, 0) AS estimated_cost_usd "
        f"FROM {UsageReport._meta.db_table} u {facts_joins('u')} "
        "WHERE u.created_at >= %s AND u.created_at < %s"
    )
    parts: list[str] = []
    params: list[Any] = []

    def raw_between(start: datetime, end: datetime, tail: bool = False) -> None:
        if start < end:
            parts.append(raw + (" AND NOT u.rolled_up" if tail else ""))
            params.extend(
                [
                    ops.adapt_datetimefield_value(start),
                    ops.adapt_datetimefield_value(end),
                ]
            )

    days = _whole_days(since, until) if use_rollup else None
    if days is None:
        raw_between(since, until)
    else:
        first, last = _midnight(days[0]), _midnight(days[1])
        parts.append(
            f"SELECT {', '.join(keys)}, cost_usd, requests, input_tokens, "
            f"output_tokens, estimated_cost_usd FROM {SpendDaily._meta.db_table} "
            "WHERE day >= %s AND day < %s"
        )
        params.extend([ops.adapt_datefield_value(d) for d in days])
        raw_between(since, first)
        raw_between(last, until)
        raw_between(first, last, tail=True)
    group = ", ".join(keys)
    sql = (
        f"SELECT {group}{', ' if keys else ''}SUM(cost_usd), SUM(requests), "
        "SUM(input_tokens), SUM(output_tokens), SUM(estimated_cost_usd) "
        f"FROM ({' UNION ALL '.join(parts)}) facts"
        + (f" GROUP BY {group}" if keys else "")
    )
    return sql, params


def _money(value: Any) -> Decimal:
    if value is None:
        return ZERO
    if isinstance(value, float):  # SQLite keeps decimals as REAL
        return Decimal(repr(value)).quantize(MICRO)
    return Decimal(value)


def _key_value(name: str, value: Any) -> Any:
    if name == "day" and isinstance(value, str):
        return date.fromisoformat(value)
    return value if value is not None else ""


def _governs(budget: Budget | None) -> tuple[tuple[str, ...], Callable[..., bool]]:
    """The dimensions ``budget``'s scope constrains and a memoised test of a
    row's values of them (none and always-true without a scope)."""
    scope = EVERYTHING if budget is None else scope_from_json(budget.scope)
    if scope == EVERYTHING:
        return (), lambda **_: True
    constrained = tuple(
        name
        for name, listed in (
            ("client", scope.clients),
            ("model", scope.models),
            ("backend", scope.backends),
            ("zone", scope.zones),
        )
        if listed is not None
    )
    assert budget is not None
    seen: dict[tuple[str, ...], bool] = {}

    def governs(**values: str) -> bool:
        key = tuple(values[name] for name in constrained)
        if key not in seen:
            full = {"client": "", "model": "", "backend": "", "zone": ""} | values
            seen[key] = budget.governs(**full)
        return seen[key]

    return constrained, governs


def spend_report(
    *,
    since: datetime,
    until: datetime,
    group_by: Sequence[str],
    budget: Budget | None = None,
    use_rollup: bool = True,
) -> SpendReport:
    """Usage recorded in [since, until) grouped by ``group_by`` (names from
    ``GROUPS``); with ``budget``, only the usage that budget's scope governs."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    groups = tuple(group_by)
    constrained, governs = _governs(budget)
    keys = groups + tuple(name for name in constrained if name not in groups)
    fetched: list[tuple[Any, ...]] = []
    if since < until:
        sql, params = spend_sql(
            since=since, until=until, keys=keys, use_rollup=use_rollup
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
    by_key: dict[tuple[Any, ...], SpendRow] = {}
    total = SpendRow()
    n = len(keys)
    for record in fetched:
        values = {k: _key_value(k, v) for k, v in zip(keys, record[:n], strict=True)}
        if not governs(**{name: values[name] for name in constrained}):
            continue
        cost, requests, tokens_in, tokens_out, estimated = record[n:]
        one = SpendRow(
            cost_usd=_money(cost),
            requests=int(requests or 0),
            input_tokens=int(tokens_in or 0),
            output_tokens=int(tokens_out or 0),
            estimated_cost_usd=_money(estimated),
        )
        key = tuple(values[name] for name in groups)
        row = by_key.get(key)
        if row is None:
            row = by_key[key] = SpendRow(keys=dict(zip(groups, key, strict=True)))
        row.add(one)
        total.add(one)
    return SpendReport(
        since, until, groups, _sorted(list(by_key.values()), groups), total
    )


def _sorted(rows: list[SpendRow], groups: tuple[str, ...]) -> list[SpendRow]:
    """By day ascending when grouped by day, then cost descending; ties by keys."""

    def ties(row: SpendRow) -> tuple[str, ...]:
        return tuple(str(row.keys[name]) for name in groups if name != "day")

    if "day" in groups:
        rows.sort(key=lambda row: (row.keys["day"], -row.cost_usd, ties(row)))
    else:
        rows.sort(key=lambda row: (-row.cost_usd, ties(row)))
    return rows
