"""Stage 3: estimate each candidate's cost and apply budgets and cost caps."""

from __future__ import annotations

from routing.pipeline.budgets import (
    FLOAT_SLACK_USD,
    estimated_costs,
    resets_on,
    snapshot_status,
    usd,
)
from routing.pipeline.intent import RoutingIntent
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


class BudgetReconciler:
    """Estimates costs and enforces budgets (fail-open) and cost caps.

    - ``estimated_cost_usd`` per candidate = input tokens / 1000 x input price +
      output tokens / 1000 x output price of the resolved model's offer.
    - ``budget_status`` is the worst status over enabled budgets (limit set).
    - at a soft or hard limit, ``prefer_cheaper``: the ``cost`` scorer counts.
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
        model = intent.model
        costs = estimated_costs(intent.candidates, intent.offers, intent.requirements)
        earlier = intent.annotations.get("estimated_cost_usd")
        # Running twice changes nothing: keep the first run's estimates too.
        intent.annotate(
            "estimated_cost_usd", {**earlier, **costs} if earlier else costs
        )

        budgets = [b for b in intent.context.budgets if b.monthly_limit_usd is not None]
        statuses = [snapshot_status(b) for b in budgets]
        status = max(
            statuses, key=_STATUS_RANK.__getitem__, default=BudgetStatus.NORMAL
        )
        intent.annotate("budget_status", status.value)
        intent.annotate("prefer_cheaper", status is not BudgetStatus.NORMAL)
        if status is not BudgetStatus.NORMAL:
            intent.use_scorer("cost")

        at_hard = [
            b
            for b, s in zip(budgets, statuses, strict=True)
            if s is BudgetStatus.HARD_LIMIT
        ]
        if at_hard:
            budget = max(at_hard, key=lambda b: _ACTION_RANK[b.hard_limit_action])
            spent = budget.spent_usd + budget.reserved_usd
            figures = f"{usd(spent)} of {usd(limit_of(budget))}"
            resets = resets_on(budget)
            intent.annotate(
                "budget_resets_on",
                budget.period_end.isoformat()
                if budget.period_end is not None
                else None,
            )
            state = (
                f"budget '{budget.name}' is at its hard limit ({figures}) and {resets}"
            )
            action = budget.hard_limit_action
            if action == HardLimitAction.WARN:
                intent.warn(
                    f"Budget '{budget.name}' is over its hard limit ({figures}); "
                    f"action is 'warn', so routing continues. It {resets}."
                )
            elif action == HardLimitAction.BLOCK_ALL:
                intent.exclude_all(
                    costs,
                    f"all routing is blocked: {state}",
                    f"Raise the limit of budget '{budget.name}' or wait until it "
                    f"{resets}.",
                )
            else:
                fix = (
                    f"Use a zero-cost (local) backend for '{model}', raise the limit "
                    f"of budget '{budget.name}', or wait until it {resets}."
                )
                for name, cost in costs.items():
                    if cost > 0.0:
                        intent.exclude(name, f"costs {usd(cost)} but {state}", fix)

        # The highest estimate: a limit it does not pass excludes nothing. (A NaN
        # first makes it NaN, and then ``top <= limit`` is false: no shortcut.)
        top = max(costs.values(), default=0.0)
        for budget in budgets:  # projected overspend
            if budget.hard_limit_action == HardLimitAction.WARN:
                continue
            used = budget.spent_usd + budget.reserved_usd
            room = limit_of(budget) - used + FLOAT_SLACK_USD
            if top <= room:
                continue
            resets = resets_on(budget)
            fix = (
                f"Use a cheaper backend for '{model}', raise the limit of budget "
                f"'{budget.name}', or wait until it {resets}."
            )
            for name, cost in costs.items():
                if cost > 0.0 and cost > room:
                    intent.exclude(
                        name,
                        f"estimated {usd(cost)} would take budget '{budget.name}' "
                        f"past its limit ({usd(used)} of {usd(limit_of(budget))} "
                        f"used; it {resets})",
                        fix,
                    )

        cap = intent.constraints.max_cost_usd
        if cap is not None and not top <= cap:
            sources = ", ".join(intent.constraints.max_cost_sources)
            fix = (
                f"Use a cheaper backend for '{model}', lower max_tokens or the "
                "prompt size, or raise the cost cap."
            )
            for name, cost in costs.items():
                if cost > cap:
                    intent.exclude(
                        name,
                        f"estimated {usd(cost)} exceeds the cost cap {usd(cap)} "
                        f"({sources})",
                        fix,
                    )


def limit_of(budget: BudgetSnapshot) -> float:
    """The limit of an enabled budget (callers keep only those)."""
    assert budget.monthly_limit_usd is not None
    return budget.monthly_limit_usd
