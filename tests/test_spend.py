"""spend_report: the same figures from the rollup as from the raw usage, at the
edges of the window and for the tail not rolled up yet."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from routing.models import Budget, SpendDaily, UsageReport
from routing.services.spend_rollup import spend_rollup, spend_rollup_batch
from routing.spend import GROUPS, SpendReport, spend_report
from tests.factories import usage_recorded

pytestmark = pytest.mark.django_db

DAY0 = datetime(2026, 11, 10, tzinfo=UTC)
ZONES = {"local-gpu": "local", "cloud-llama": "cloud", "cloud-gpt": "cloud"}
CLIENTS = ("team-a-app", "team-b", "user:olivia")
MODELS = ("llama3.1:8b", "gpt-4o-mini")
BACKENDS = ("local-gpu", "cloud-llama", "cloud-gpt", "retired")


@dataclass(frozen=True)
class Fact:
    at: datetime
    client: str
    model: str
    backend: str
    cost: Decimal
    estimated: Decimal | None
    input_tokens: int
    output_tokens: int

    @property
    def zone(self) -> str:
        return ZONES.get(self.backend, "")


def record(n: int, *, start: int = 0) -> list[Fact]:
    """``n`` usages over five days, at hours that fall on either side of any
    edge the tests cut at (a retired backend has no zone)."""
    facts = []
    for i in range(start, start + n):
        fact = Fact(
            at=DAY0 + timedelta(hours=(i * 7) % 120, minutes=(i * 13) % 60),
            client=CLIENTS[i % 3],
            model=MODELS[(i // 2) % 2],
            backend=BACKENDS[i % 4],
            cost=Decimal(f"0.{(i * 37) % 1000:03d}123"),
            estimated=None if i % 9 == 0 else Decimal(f"0.0{i % 10}5"),
            input_tokens=100 + i,
            output_tokens=10 * i,
        )
        usage_recorded(
            at=fact.at,
            client=fact.client,
            model=fact.model,
            backend=fact.backend,
            cost=str(fact.cost),
            estimated=None if fact.estimated is None else str(fact.estimated),
            input_tokens=fact.input_tokens,
            output_tokens=fact.output_tokens,
        )
        facts.append(fact)
    return facts


def expected(
    facts: list[Fact],
    since: datetime,
    until: datetime,
    groups: tuple[str, ...],
    budget: Budget | None = None,
) -> dict[tuple[Any, ...], tuple[Decimal, int, int, int, Decimal]]:
    """The report computed in Python from the facts (the oracle)."""
    sums: dict[tuple[Any, ...], list[Any]] = defaultdict(
        lambda: [Decimal(0), 0, 0, 0, Decimal(0)]
    )
    for f in facts:
        if not since <= f.at < until:
            continue
        if budget and not budget.governs(
            client=f.client, model=f.model, backend=f.backend, zone=f.zone
        ):
            continue
        values = {
            "client": f.client,
            "model": f.model,
            "backend": f.backend,
            "zone": f.zone,
            "day": f.at.date(),
        }
        row = sums[tuple(values[g] for g in groups)]
        row[0] += f.cost
        row[1] += 1
        row[2] += f.input_tokens
        row[3] += f.output_tokens
        row[4] += f.estimated or 0
    return {key: tuple(value) for key, value in sums.items()}  # type: ignore[misc]


def as_dict(
    report: SpendReport,
) -> dict[tuple[Any, ...], tuple[Decimal, int, int, int, Decimal]]:
    return {
        tuple(row.keys.values()): (
            row.cost_usd,
            row.requests,
            row.input_tokens,
            row.output_tokens,
            row.estimated_cost_usd,
        )
        for row in report.rows
    }


WINDOWS = [
    (DAY0, DAY0 + timedelta(days=5)),  # whole days only
    (DAY0 + timedelta(hours=10, minutes=30), DAY0 + timedelta(days=3, hours=14)),
    (DAY0 + timedelta(days=1, hours=2), DAY0 + timedelta(days=1, hours=20)),  # in a day
    (DAY0 + timedelta(hours=23), DAY0 + timedelta(days=1, hours=1)),  # no whole day
    (DAY0 - timedelta(days=3), DAY0 + timedelta(days=2, hours=5)),
]
GROUPINGS = [(g,) for g in GROUPS] + list(itertools.combinations(GROUPS, 2))


def budgets() -> list[Budget | None]:
    return [
        None,
        Budget(name="cloud", scope={"zones": ["cloud"]}),
        Budget(name="team", scope={"clients": ["team-a-app", "team-b"]}),
        Budget(name="gpt", scope={"models": ["gpt-*"], "backends": ["cloud-gpt"]}),
    ]


def assert_same_reports(facts: list[Fact]) -> None:
    for (since, until), groups, budget in itertools.product(
        WINDOWS, GROUPINGS, budgets()
    ):
        args = {"since": since, "until": until, "group_by": groups, "budget": budget}
        rolled = spend_report(**args)
        raw = spend_report(**args, use_rollup=False)
        assert rolled == raw, (since, until, groups, budget)
        oracle = expected(facts, since, until, groups, budget)
        assert as_dict(rolled) == oracle, (since, until, groups, budget)
        assert rolled.total.requests == sum(v[1] for v in oracle.values())
        assert rolled.total.cost_usd == sum((v[0] for v in oracle.values()), Decimal(0))


def test_the_report_is_the_same_from_the_rollup_with_a_tail_and_at_the_edges(
    fleet: Any,
) -> None:
    facts = record(60)
    assert_same_reports(facts)  # nothing rolled up: all raw
    spend_rollup_batch(batch_size=25)
    assert UsageReport.objects.filter(rolled_up=False).count() == 35
    facts += record(30, start=60)  # late reports for the same days: the tail
    assert_same_reports(facts)
    assert spend_rollup().rolled_up == 65
    assert SpendDaily.objects.exists()
    assert_same_reports(facts)


def test_a_report_grouped_by_day_runs_by_day_then_by_cost(fleet: Any) -> None:
    usage_recorded(at=DAY0 + timedelta(hours=1), cost="1", model="a")
    usage_recorded(at=DAY0 + timedelta(hours=2), cost="3", model="b")
    usage_recorded(at=DAY0 + timedelta(days=1), cost="2", model="a")
    spend_rollup()
    report = spend_report(
        since=DAY0, until=DAY0 + timedelta(days=2), group_by=["day", "model"]
    )
    assert [(r.keys["day"], r.keys["model"], r.cost_usd) for r in report.rows] == [
        (date(2026, 11, 10), "b", Decimal(3)),
        (date(2026, 11, 10), "a", Decimal(1)),
        (date(2026, 11, 11), "a", Decimal(2)),
    ]
    assert report.total.cost_usd == Decimal(6)
    assert report.total.requests == 3


def test_rolling_up_twice_counts_each_usage_once(fleet: Any) -> None:
    facts = record(12)
    assert spend_rollup(batch_size=5).rolled_up == 12
    assert spend_rollup(batch_size=5).rolled_up == 0
    assert not UsageReport.objects.filter(rolled_up=False).exists()
    assert sum(r.requests for r in SpendDaily.objects.all()) == 12
    assert sum(r.cost_usd for r in SpendDaily.objects.all()) == sum(
        f.cost for f in facts
    )


def test_a_rollup_row_holds_the_sums_of_its_day_and_dimensions(fleet: Any) -> None:
    at = DAY0 + timedelta(hours=5)
    usage_recorded(at=at, client="c", backend="cloud-gpt", cost="0.25")
    usage_recorded(at=at + timedelta(hours=20), client="c", backend="cloud-gpt")
    usage_recorded(
        at=at + timedelta(hours=1), client="c", backend="cloud-gpt", cost="0.5"
    )
    spend_rollup()
    rows = list(SpendDaily.objects.values())
    for row in rows:
        row.pop("id")
    assert sorted(rows, key=lambda r: r["day"]) == [
        {
            "day": date(2026, 11, 10),
            "client": "c",
            "model": "llama3.1:8b",
            "backend": "cloud-gpt",
            "zone": "cloud",
            "cost_usd": Decimal("0.75"),
            "requests": 2,
            "input_tokens": 200,
            "output_tokens": 100,
            "estimated_cost_usd": Decimal("0.024"),
        },
        {
            "day": date(2026, 11, 11),
            "client": "c",
            "model": "llama3.1:8b",
            "backend": "cloud-gpt",
            "zone": "cloud",
            "cost_usd": Decimal("0.01"),
            "requests": 1,
            "input_tokens": 100,
            "output_tokens": 50,
            "estimated_cost_usd": Decimal("0.012"),
        },
    ]
