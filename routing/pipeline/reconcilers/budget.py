"""Stage 3: estimate each candidate's cost and apply budgets and cost caps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from routing.pipeline.budgets import (
    FLOAT_SLACK_USD,
    estimated_costs,
    resets_on,
    scope_governs_backend,
    scope_governs_request,
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
    """Estimates costs and enforces the budgets that govern each candidate
    (fail-open), and cost caps.

    - ``estimated_cost_usd`` per candidate = input tokens / 1000 x input price +
      output tokens / 1000 x output price of the resolved model's offer.
    - a budget governs a candidate when its scope matches the request's client,
      the resolved model and the candidate's zone and name; ``budgets`` lists
      each budget that governs some candidate with its status, and
      ``budget_status`` is the worst of those (a budget without a limit only
      tracks spend: always ``normal``).
    - at a soft or hard limit, ``prefer_cheaper``: the ``cost`` scorer counts.
    - a budget at its hard limit applies its action to the candidates it
      governs: ``block_all`` excludes them all, ``block_cloud`` those with a cost
      above zero, ``warn`` only warns. The strictest budgets go first.
    - budgets with a blocking action also exclude, before the limit, any
      candidate they govern whose estimate would take spent + reserved past it.
    - independently, candidates above the cost cap (``max_cost_usd``) go.
    Reasons name the budget and the date it resets.
    """

    name: ClassVar[str] = "budget"
    error_policy: ClassVar[ErrorPolicy] = ErrorPolicy.FAIL_OPEN

    def reconcile(self, intent: RoutingIntent) -> None:
        """Annotate costs and budget status; exclude what the budgets forbid."""
        model = intent.model
        costs = estimated_costs(
            intent.candidate_names(), intent.offers, intent.requirements
        )
        earlier = intent.annotations.get("estimated_cost_usd")
        # Running twice changes nothing: keep the first run's estimates too.
        intent.annotate(
            "estimated_cost_usd", {**earlier, **costs} if earlier else costs
        )

        governing = governing_budgets(intent, costs)
        intent.annotate(
            "budgets",
            [{"name": b.name, "status": str(s)} for b, _, s in governing],
        )
        status = BudgetStatus.NORMAL  # the worst of them
        for _, _, each in governing:
            if _STATUS_RANK[each] > _STATUS_RANK[status]:
                status = each
        intent.annotate("budget_status", str(status))
        intent.annotate("prefer_cheaper", status is not BudgetStatus.NORMAL)
        if status is not BudgetStatus.NORMAL:
            intent.use_scorer("cost")

        at_hard = [g for g in governing if g[2] is BudgetStatus.HARD_LIMIT]
        if at_hard:  # the strictest action first
            at_hard.sort(key=lambda g: -_ACTION_RANK[g[0].hard_limit_action])
            first = at_hard[0][0]
            intent.annotate(
                "budget_resets_on",
                first.period_end.isoformat() if first.period_end is not None else None,
            )
        for budget, governed, _ in at_hard:
            spent = budget.spent_usd + budget.reserved_usd
            figures = f"{usd(spent)} of {usd(limit_of(budget))}"
            resets = resets_on(budget)
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
                    governed,
                    f"all routing is blocked: {state}",
                    f"Raise the limit of budget '{budget.name}' or wait until it "
                    f"{resets}.",
                )
            else:
                fix = (
                    f"Use a zero-cost (local) backend for '{model}', raise the limit "
                    f"of budget '{budget.name}', or wait until it {resets}."
                )
                for name in governed:
                    if (cost := costs[name]) > 0.0:
                        intent.exclude(name, f"costs {usd(cost)} but {state}", fix)

        # The highest estimate: a limit it does not pass excludes nothing. (A NaN
        # first makes it NaN, and then ``top <= limit`` is false: no shortcut.)
        top = max(costs.values()) if costs else 0.0
        for budget, governed, _ in governing:  # projected overspend
            if (
                budget.monthly_limit_usd is None
                or budget.hard_limit_action == HardLimitAction.WARN
            ):
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
            for name in governed:
                cost = costs[name]
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


#: A budget that governs some candidates, those candidates, and its status.
Governing = tuple[BudgetSnapshot, Iterable[str], BudgetStatus]


def governing_budgets(
    intent: RoutingIntent, costs: Mapping[str, float]
) -> list[Governing]:
    """Each budget that governs some candidate, with the candidates it governs
    (``costs``' keys: the candidates as the stage began) and its status, in
    context order."""
    client, model = intent.request.client, intent.model
    governing: list[Governing] = []
    for budget in intent.context.budgets:
        scope = budget.scope
        if not scope_governs_request(scope, client, model):
            continue
        governed: Iterable[str] = costs.keys()
        if scope.per_backend:
            candidates = intent.candidates
            governed = [
                name
                for name in costs
                if scope_governs_backend(
                    scope, name, candidates[name].privacy_zone or ""
                )
            ]
            if not governed:
                continue
        governing.append((budget, governed, snapshot_status(budget)))
    return governing


def limit_of(budget: BudgetSnapshot) -> float:
    """The limit of an enabled budget (callers keep only those)."""
    assert budget.monthly_limit_usd is not None
    return budget.monthly_limit_usd
