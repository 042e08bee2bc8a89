"""Budget arithmetic: the one statement of the soft/hard-limit rule, and costs.

``budget_status`` is used by the budget reconciler and by ``Budget.status``
(routing/models/budgets.py); the database write guard
(routing/services/ledger.py ``status_rank_sql``) states the same rule in SQL,
built from ``SOFT_LIMIT_SQL``/``HARD_LIMIT_SQL`` below, and a test checks the
two agree on a grid of values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, overload

from routing.pipeline.intent import Requirements
from routing.pipeline.rules import glob_matches
from routing.pipeline.types import (
    BudgetScope,
    BudgetSnapshot,
    BudgetStatus,
    ModelOffer,
)

#: Budget figures are exact 6-decimal amounts seen as floats: ``limit - used``
#: can come out a few 1e-18 short, and an estimate that exactly fits (which
#: the database, comparing decimals, accepts) must not be excluded for it.
FLOAT_SLACK_USD = 1e-9

#: The rule in SQL over columns ``{used}``, ``{limit}`` and ``{percent}``.
HARD_LIMIT_SQL = "{used} >= {limit}"
SOFT_LIMIT_SQL = "{used} >= {limit} * {percent} / 100.0"


@overload
def budget_status(
    spent: float, reserved: float, limit: float | None, soft_percent: int
) -> BudgetStatus: ...
@overload
def budget_status(
    spent: Decimal, reserved: Decimal, limit: Decimal | None, soft_percent: int
) -> BudgetStatus: ...
def budget_status(
    spent: Any, reserved: Any, limit: Any, soft_percent: int
) -> BudgetStatus:
    """Where spent + reserved stands against ``limit`` (None = disabled):
    ``hard_limit`` at 100 % or more, ``soft_limit`` at ``soft_percent`` % or
    more, else ``normal``."""
    if limit is None:
        return BudgetStatus.NORMAL
    used = spent + reserved
    if used >= limit:
        return BudgetStatus.HARD_LIMIT
    if used >= limit * soft_percent / 100:
        return BudgetStatus.SOFT_LIMIT
    return BudgetStatus.NORMAL


def snapshot_status(budget: BudgetSnapshot) -> BudgetStatus:
    """``budget_status`` of a budget snapshot."""
    return budget_status(
        budget.spent_usd,
        budget.reserved_usd,
        budget.monthly_limit_usd,
        budget.soft_limit_percent,
    )


def scope_governs_request(scope: BudgetScope, client: str, model: str) -> bool:
    """Whether ``scope`` governs a request of ``client`` for the resolved ``model``
    (on some backend: see ``scope_governs_backend``)."""
    if scope.clients is not None and client not in scope.clients:
        return False
    return scope.models is None or any(
        glob_matches(pattern, model) for pattern in scope.models
    )


def scope_governs_backend(scope: BudgetScope, name: str, zone: str) -> bool:
    """Whether ``scope`` governs the backend ``name`` in ``zone``."""
    if scope.backends is not None and name not in scope.backends:
        return False
    return scope.zones is None or zone in scope.zones


def scope_governs(
    scope: BudgetScope, *, client: str, model: str, backend: str, zone: str
) -> bool:
    """Whether ``scope`` governs ``client``'s request for ``model`` on ``backend``."""
    return scope_governs_request(scope, client, model) and scope_governs_backend(
        scope, backend, zone
    )


def budgets_leave_room(budgets: Iterable[BudgetSnapshot], estimate: float) -> bool:
    """Whether every enabled budget stays below its soft limit with ``estimate`` more.

    Then no budget is at a soft or hard limit and none can exclude a candidate
    estimated at ``estimate`` or less: the budget stage decides nothing, so any
    budget figures with this property lead to the same decision.
    """
    if not math.isfinite(estimate):
        return False
    for b in budgets:
        used = b.spent_usd + b.reserved_usd + estimate
        status = budget_status(used, 0.0, b.monthly_limit_usd, b.soft_limit_percent)
        if used != used or status is not BudgetStatus.NORMAL:  # NaN: no room
            return False
    return True


def estimate_cost(offer: ModelOffer, tokens_in: int, tokens_out: int) -> float:
    """USD for ``tokens_in`` and ``tokens_out`` at ``offer``'s prices per 1k."""
    return (
        tokens_in * offer.input_cost_per_1k + tokens_out * offer.output_cost_per_1k
    ) / 1000.0


def estimated_costs(
    candidates: Iterable[str],
    offers: dict[str, ModelOffer],
    requirements: Requirements,
) -> dict[str, float]:
    """``estimate_cost`` of each named candidate's offer (0.0 without one)."""
    # float(int) is the conversion ``int * float`` makes (same value), and
    # float * float skips the mixed-type dispatch.
    tokens_in = float(requirements.estimated_input_tokens)
    tokens_out = float(requirements.estimated_output_tokens)
    return {  # estimate_cost, inlined: this runs for every candidate
        name: (
            tokens_in * offer.input_cost_per_1k + tokens_out * offer.output_cost_per_1k
        )
        / 1000.0
        if (offer := offers.get(name)) is not None
        else 0.0
        for name in candidates
    }


def usd(amount: float) -> str:
    """``$0.0123``-style amount: up to 6 decimals, at least 2."""
    text = f"{amount:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def resets_on(budget: BudgetSnapshot) -> str:
    """``resets on 2026-12-01`` (or the start of the next period when unknown)."""
    if budget.period_end is not None:
        return f"resets on {budget.period_end.isoformat()}"
    return "resets at the start of its next period"
