"""budget: each candidate answers to the budgets whose scope governs it."""

from __future__ import annotations

from dataclasses import replace

from routing.pipeline.types import BudgetScope, HardLimitAction, Outcome

from .fleet import budget, cloud, config, local, request, route

CLOUD_ONLY = BudgetScope(zones=frozenset({"cloud"}))


def as_client(name: str, model: str = "llama3"):
    return replace(request(model), client=name)


def test_a_zone_budget_at_its_hard_limit_excludes_only_backends_in_its_zone() -> None:
    cfg = config(cloud("c"), local("l", priority=99))
    cloud_budget = budget(1, spent=1, name="cloud", scope=CLOUD_ONLY)
    result = route(cfg, request(), budget(None), cloud_budget)
    assert result.backend_name == "l"
    assert (
        "budget 'cloud' is at its hard limit"
        in result.annotations["budget_excluded"]["c"]
    )
    assert result.annotations["budgets"] == [
        {"name": "global", "status": "normal"},
        {"name": "cloud", "status": "hard_limit"},
    ]
    assert result.annotations["budget_status"] == "hard_limit"


def test_a_block_all_zone_budget_blocks_only_its_zone() -> None:
    cfg = config(cloud("c"), local("l", priority=99))
    blocked = budget(
        1, spent=1, name="cloud", scope=CLOUD_ONLY, action=HardLimitAction.BLOCK_ALL
    )
    result = route(cfg, request(), blocked)
    assert result.outcome is Outcome.ROUTE
    assert result.backend_name == "l"
    assert (
        "all routing is blocked: budget 'cloud'"
        in result.annotations["budget_excluded"]["c"]
    )


def test_a_client_budget_governs_only_its_clients() -> None:
    cfg = config(cloud("c"))
    team = budget(
        1, spent=1, name="team-a", scope=BudgetScope(clients=frozenset({"team-a-app"}))
    )
    blocked = route(cfg, as_client("team-a-app"), team)
    assert blocked.outcome is Outcome.REJECT
    assert "budget 'team-a'" in (blocked.error_message or "")
    other = route(cfg, as_client("team-b-app"), team)
    assert other.outcome is Outcome.ROUTE
    assert other.annotations["budgets"] == []
    assert other.annotations["budget_status"] == "normal"


def test_a_model_budget_matches_the_resolved_model_by_glob() -> None:
    cfg = config(cloud("c", model="gpt-4o"), aliases={"smart": "gpt-4o"})
    gpt = budget(1, spent=1, name="gpt", scope=BudgetScope(models=("gpt-*",)))
    result = route(cfg, request("smart"), gpt)
    assert result.outcome is Outcome.REJECT
    assert "budget 'gpt'" in (result.error_message or "")
    other = route(config(cloud("c", model="llama3")), request("llama3"), gpt)
    assert other.outcome is Outcome.ROUTE


def test_a_backend_budget_projected_overspend_names_the_budget() -> None:
    cfg = config(cloud("c", price=1.0), cloud("d", price=1.0, priority=99))
    only_c = budget(0.5, name="c-only", scope=BudgetScope(backends=frozenset({"c"})))
    result = route(cfg, request(max_tokens=1000), only_c)
    assert result.backend_name == "d"
    assert (
        "would take budget 'c-only' past its limit"
        in result.annotations["budget_excluded"]["c"]
    )


def test_a_tracking_only_budget_never_excludes_and_reads_normal() -> None:
    cfg = config(cloud("c"))
    result = route(cfg, request(), budget(None, spent=1e9, name="tracking"))
    assert result.outcome is Outcome.ROUTE
    assert result.annotations["budgets"] == [{"name": "tracking", "status": "normal"}]
    assert result.annotations["budget_status"] == "normal"


def test_the_worst_governing_status_is_the_budget_status() -> None:
    cfg = config(cloud("c"), local("l"))
    soft = budget(100, spent=80, name="cloud", scope=CLOUD_ONLY)
    result = route(cfg, request(), budget(100), soft)
    assert result.annotations["budget_status"] == "soft_limit"
    assert result.annotations["prefer_cheaper"] is True
