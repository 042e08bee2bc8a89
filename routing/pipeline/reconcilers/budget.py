"""Stage 3: estimate each candidate's cost and apply budgets and cost caps."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from routing.pipeline.intent import RoutingIntent
from routing.pipeline.scoring import estimated_costs
from routing.pipeline.types import (
    BudgetSnapshot,
    BudgetStatus,
    ErrorPolicy,
    HardLimitAction,
)

#: Budget figures are exact 6-decimal amounts seen as floats: ``limit - used``
#: can come out a few 1e-18 short, and an estimate that exactly fits (which
#: the database, comparing decimals, accepts) must not be excluded for it.
FLOAT_SLACK_USD = 1e-9

_STATUS_RANK = {
    BudgetStatus.NORMAL: 0,
    BudgetStatus.SOFT_LIMIT: 1,
    BudgetStatus.HARD_LIMIT: 2,
}
_ACTION_RANK = {
    HardLimitAction.WARN: 0,
    HardLimitAction.BLOCK_CLOUD: 1,
    HardLimitAction.BLOCK_ALL: 2,
}


def usd(amount: float) -> str:
    """``$0.0123``-style amount: up to 6 decimals, at least 2."""
    text = f"{amount:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def budget_status(budget: BudgetSnapshot) -> BudgetStatus:
    """Status of an enabled budget: spent + reserved against its limit."""
    limit = budget.monthly_limit_usd
    if limit is None:
        return BudgetStatus.NORMAL
    used = budget.spent_usd + budget.reserved_usd
    if used >= limit:
        return BudgetStatus.HARD_LIMIT
    if used >= limit * budget.soft_limit_percent / 100.0:
        return BudgetStatus.SOFT_LIMIT
    return BudgetStatus.NORMAL


def budgets_leave_room(budgets: Iterable[BudgetSnapshot], estimate: float) -> bool:
    """Whether every enabled budget stays below its soft limit with ``estimate`` more.

    Then no budget is at a soft or hard limit and none can exclude a candidate
    estimated at ``estimate`` or less: the budget stage decides nothing, so any
    budget figures with this property lead to the same decision.
    """
    if not math.isfinite(estimate):
        return False
    for budget in budgets:
        limit = budget.monthly_limit_usd
        if limit is None:
            continue
        used = budget.spent_usd + budget.reserved_usd
        if not used + estimate < limit * budget.soft_limit_percent / 100.0:
            return False
    return True


def resets_on(budget: BudgetSnapshot) -> str:
    """``resets on 2026-12-01`` (or the start of the next period when unknown)."""
    if budget.period_end is not None:
        return f"resets on {budget.period_end.isoformat()}"
    return "resets at the start of its next period"


class _Assessed(NamedTuple):
    budget: BudgetSnapshot
    status: BudgetStatus
    used: float
    limit: float


class BudgetReconciler:
    """Estimates costs and enforces budgets (fail-open) and cost caps.

    - ``estimated_cost_usd`` per candidate = input tokens / 1000 x input price +
      output tokens / 1000 x output price of the resolved model's offer.
    - ``budget_status`` is the worst status over enabled budgets (limit set).
    - soft limit: ``prefer_cheaper`` = true (selection then weighs cost).
    - hard limit: ``block_all`` excludes everything, ``block_cloud`` every
      candidate with a cost above zero, ``warn`` only warns. The strictest action
      of the budgets at their hard limit applies.
    - budgets with a blocking action also exclude, before the limit, any
      candidate whose estimate would take spent + reserved past the limit.
    - independently, candidates above the cost cap (``max_cost_usd``) go.
    Reasons name the date the budget resets.
    """

    name = "budget"
    error_policy = ErrorPolicy.FAIL_OPEN

    def reconcile(self, intent: RoutingIntent) -> None:
        """Annotate costs and budget status; exclude what the budgets forbid."""
        estimates = estimated_costs(intent)
        annotations = intent.annotations
        if "estimated_cost_usd" in annotations:
            costs = dict(annotations["estimated_cost_usd"])
            costs.update(estimates)
        else:
            costs = estimates  # not changed below, so no copy needed
        annotations["estimated_cost_usd"] = costs
        # Merge with an earlier run so running twice changes nothing.
        excluded: dict[str, str] = dict(annotations.get("budget_excluded", {}))
        model = intent.model
        # The highest estimate: a limit it does not pass excludes nothing.
        top = max(estimates.values(), default=0.0)

        def exclude(batch: list[tuple[str, str, str]]) -> None:
            if batch:
                reasons = {name: reason for name, reason, _ in batch}
                for name in intent.exclude_many(batch):
                    excluded[name] = reasons[name]

        assessed = [
            _Assessed(
                b,
                budget_status(b),
                b.spent_usd + b.reserved_usd,
                b.monthly_limit_usd,
            )
            for b in intent.context.budgets
            if b.monthly_limit_usd is not None
        ]
        status = BudgetStatus.NORMAL
        for item in assessed:
            if _STATUS_RANK[item.status] > _STATUS_RANK[status]:
                status = item.status
        annotations["budget_status"] = status._value_  # = .value, minus 2 calls
        annotations["prefer_cheaper"] = status is not BudgetStatus.NORMAL

        at_hard = [a for a in assessed if a.status is BudgetStatus.HARD_LIMIT]
        if at_hard:
            worst = max(at_hard, key=lambda a: _ACTION_RANK[a.budget.hard_limit_action])
            budget = worst.budget
            action = budget.hard_limit_action
            resets = resets_on(budget)
            annotations["budget_resets_on"] = _iso(budget)
            state = (
                f"budget '{budget.name}' is at its hard limit "
                f"({usd(worst.used)} of {usd(worst.limit)}) and {resets}"
            )
            if action == HardLimitAction.WARN:
                intent.warn(
                    f"Budget '{budget.name}' is over its hard limit "
                    f"({usd(worst.used)} of {usd(worst.limit)}); action is 'warn', "
                    f"so routing continues. It {resets}."
                )
            elif action == HardLimitAction.BLOCK_ALL:
                fix = (
                    f"Raise the limit of budget '{budget.name}' or wait until it "
                    f"{resets}."
                )
                reason = f"all routing is blocked: {state}"
                exclude([(name, reason, fix) for name in estimates])
            else:
                fix = (
                    f"Use a zero-cost (local) backend for '{model}', raise the limit "
                    f"of budget '{budget.name}', or wait until it {resets}."
                )
                exclude(
                    [
                        (name, f"costs {usd(cost)} but {state}", fix)
                        for name, cost in estimates.items()
                        if cost > 0.0
                    ]
                )

        for item in assessed:
            if item.budget.hard_limit_action == HardLimitAction.WARN:
                continue
            room = item.limit - item.used + FLOAT_SLACK_USD
            if not _may_exceed(top, room) or not _may_exceed(top, 0.0):
                continue
            budget = item.budget
            resets = resets_on(budget)
            fix = (
                f"Use a cheaper backend for '{model}', raise the limit of budget "
                f"'{budget.name}', or wait until it {resets}."
            )
            exclude(
                [
                    (
                        name,
                        f"estimated {usd(cost)} would take budget '{budget.name}' "
                        f"past its limit ({usd(item.used)} of {usd(item.limit)} used; "
                        f"it {resets})",
                        fix,
                    )
                    for name, cost in estimates.items()
                    if cost > 0.0 and cost > room
                ]
            )

        cap = intent.constraints.max_cost_usd
        if cap is not None and _may_exceed(top, cap):
            sources = ", ".join(intent.constraints.max_cost_sources)
            fix = (
                f"Use a cheaper backend for '{model}', lower max_tokens or the "
                "prompt size, or raise the cost cap."
            )
            exclude(
                [
                    (
                        name,
                        f"estimated {usd(cost)} exceeds the cost cap {usd(cap)} "
                        f"({sources})",
                        fix,
                    )
                    for name, cost in estimates.items()
                    if cost > cap
                ]
            )
        annotations["budget_excluded"] = excluded


def _may_exceed(top: float, limit: float) -> bool:
    """Whether some estimate may be above ``limit``, given the highest one.

    ``max()`` can return NaN only when NaN comes first, and then hides the rest.
    """
    return top > limit or top != top


def _iso(budget: BudgetSnapshot) -> str | None:
    return budget.period_end.isoformat() if budget.period_end is not None else None
