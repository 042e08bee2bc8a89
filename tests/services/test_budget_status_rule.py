"""The soft/hard-limit rule is stated once: the SQL guard and label agree with it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from routing.models import Budget
from routing.pipeline.budgets import budget_status
from routing.services.ledger import STATUS_RANKS, status_rank_sql

LIMITS = ("0", "0.000001", "1", "10", "100.5", "999999.999999")
PERCENTS = (1, 50, 75, 99, 100)
OFFSETS = ("-0.000002", "-0.000001", "0", "0.000001", "0.5")


def _grid() -> list[tuple[Decimal, Decimal, Decimal, int]]:
    rows = []
    for limit in map(Decimal, LIMITS):
        for percent in PERCENTS:
            for base in (limit * percent / 100, limit, limit / 3):
                for offset in map(Decimal, OFFSETS):
                    used = max(base.quantize(Decimal("0.000001")) + offset, Decimal(0))
                    reserved = (used / 4).quantize(Decimal("0.000001"))
                    rows.append((used - reserved, reserved, limit, percent))
    return rows


def _sql_rank(spent: Decimal, reserved: Decimal, limit: Decimal, percent: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {status_rank_sql('b')} FROM (SELECT CAST(%s AS NUMERIC) AS "
            "spent_usd, CAST(%s AS NUMERIC) AS reserved_usd, CAST(%s AS NUMERIC) "
            "AS monthly_limit_usd, %s AS soft_limit_percent) b",
            [str(spent), str(reserved), str(limit), percent],
        )
        return int(cursor.fetchone()[0])


@pytest.mark.django_db
def test_the_sql_status_rank_agrees_with_the_pipeline_rule_on_a_grid() -> None:
    grid = _grid()
    assert len(grid) > 400
    for spent, reserved, limit, percent in grid:
        expected = STATUS_RANKS.index(budget_status(spent, reserved, limit, percent))
        assert _sql_rank(spent, reserved, limit, percent) == expected, (
            spent,
            reserved,
            limit,
            percent,
        )


def test_the_budget_model_status_is_the_pipeline_rule() -> None:
    assert Budget(name="b", monthly_limit_usd=None).status.value == "normal"
    for spent, reserved, limit, percent in _grid():
        budget = Budget(
            name="b",
            monthly_limit_usd=limit,
            soft_limit_percent=percent,
            spent_usd=spent,
            reserved_usd=reserved,
        )
        assert budget.status is budget_status(spent, reserved, limit, percent)
