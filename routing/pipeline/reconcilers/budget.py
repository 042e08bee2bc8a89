"""Stage 3: estimate each candidate's cost and apply budgets and cost caps."""

from __future__ import annotations

from dataclasses import dataclass

from routing.pipeline.intent import RoutingIntent
from routing.pipeline.scoring import estimate_cost
from routing.pipeline.types import (
    BudgetSnapshot,
    BudgetStatus,
    ErrorPolicy,
    HardLimitAction,
)

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


def resets_on(budget: BudgetSnapshot) -> str:
    """``resets on 2026-12-01`` (or the start of the next period when unknown)."""
    if budget.period_end is not None:
        return f"resets on {budget.period_end.isoformat()}"
    return "resets at the start of its next period"


@dataclass(frozen=True, slots=True)
class _Assessed:
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
        offers = intent.offers
        requirements = intent.requirements
        estimates: dict[str, float] = {}
        for backend in intent.candidate_list():
            offer = offers.get(backend.name)
            estimates[backend.name] = (
                estimate_cost(offer, requirements) if offer is not None else 0.0
            )
        costs = dict(intent.annotations.get("estimated_cost_usd", {}))
        costs.update(estimates)
        intent.annotate("estimated_cost_usd", costs)
        # Merge with an earlier run so running twice changes nothing.
        excluded: dict[str, str] = dict(intent.annotations.get("budget_excluded", {}))
        model = intent.model

        def exclude(name: str, reason: str, action: str) -> None:
            if intent.exclude(name, reason, action):
                excluded[name] = reason

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
        intent.annotate("budget_status", status.value)
        intent.annotate("prefer_cheaper", status is not BudgetStatus.NORMAL)

        at_hard = [a for a in assessed if a.status is BudgetStatus.HARD_LIMIT]
        if at_hard:
            worst = max(at_hard, key=lambda a: _ACTION_RANK[a.budget.hard_limit_action])
            budget = worst.budget
            action = budget.hard_limit_action
            resets = resets_on(budget)
            intent.annotate("budget_resets_on", _iso(budget))
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
                for name in estimates:
                    exclude(name, f"all routing is blocked: {state}", fix)
            else:
                fix = (
                    f"Use a zero-cost (local) backend for '{model}', raise the limit "
                    f"of budget '{budget.name}', or wait until it {resets}."
                )
                for name, cost in estimates.items():
                    if cost > 0.0:
                        exclude(name, f"costs {usd(cost)} but {state}", fix)

        for item in assessed:
            if item.budget.hard_limit_action == HardLimitAction.WARN:
                continue
            budget = item.budget
            room = item.limit - item.used
            resets = resets_on(budget)
            fix = (
                f"Use a cheaper backend for '{model}', raise the limit of budget "
                f"'{budget.name}', or wait until it {resets}."
            )
            for name, cost in estimates.items():
                if cost > 0.0 and cost > room:
                    exclude(
                        name,
                        f"estimated {usd(cost)} would take budget '{budget.name}' "
                        f"past its limit ({usd(item.used)} of {usd(item.limit)} used; "
                        f"it {resets})",
                        fix,
                    )

        cap = intent.constraints.max_cost_usd
        if cap is not None:
            sources = ", ".join(intent.constraints.max_cost_sources)
            fix = (
                f"Use a cheaper backend for '{model}', lower max_tokens or the "
                "prompt size, or raise the cost cap."
            )
            for name, cost in estimates.items():
                if cost > cap:
                    exclude(
                        name,
                        f"estimated {usd(cost)} exceeds the cost cap {usd(cap)} "
                        f"({sources})",
                        fix,
                    )
        intent.annotate("budget_excluded", excluded)


def _iso(budget: BudgetSnapshot) -> str | None:
    return budget.period_end.isoformat() if budget.period_end is not None else None
