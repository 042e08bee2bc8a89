"""budget: cost estimates, limits, projected overspend and cost caps."""

from __future__ import annotations

import pytest

from routing.pipeline.types import HardLimitAction, Outcome, PolicySnapshot

from .fleet import budget, cloud, config, local, offer, request, route


def test_cost_is_estimated_from_the_model_prices_and_token_estimates() -> None:
    cfg = config(
        cloud(
            "c",
            models=(offer("llama3", input_cost_per_1k=2.0, output_cost_per_1k=4.0),),
        )
    )
    result = route(cfg, request(text="x" * 400, max_tokens=500))
    # 100 input tokens * 2/1k + 500 output tokens * 4/1k
    assert result.annotations["estimated_cost_usd"] == {"c": pytest.approx(2.2)}
    assert result.estimated_cost_usd == pytest.approx(2.2)


def test_no_enabled_budget_means_normal_status() -> None:
    result = route(config(cloud("c")), request(), budget(None, spent=1e9))
    assert result.annotations["budget_status"] == "normal"
    assert result.annotations["prefer_cheaper"] is False


def test_the_soft_limit_asks_selection_to_prefer_cheaper_backends() -> None:
    cfg = config(cloud("pricey", price=1.0), cloud("cheap", price=0.001))
    result = route(cfg, request(), budget(100, spent=80))
    assert result.annotations["budget_status"] == "soft_limit"
    assert result.annotations["prefer_cheaper"] is True
    assert result.backend_name == "cheap"
    assert "cost" in result.annotations["score_breakdown"]["cheap"]


def test_block_cloud_at_the_hard_limit_excludes_every_priced_backend() -> None:
    cfg = config(cloud("c"), local("l", priority=99))
    result = route(cfg, request(), budget(100, spent=60, reserved=40))
    assert result.annotations["budget_status"] == "hard_limit"
    assert result.backend_name == "l"
    assert "2026-12-01" in result.annotations["budget_excluded"]["c"]


def test_block_all_at_the_hard_limit_rejects_naming_the_reset_date() -> None:
    cfg = config(cloud("c"), local("l"))
    result = route(
        cfg, request(), budget(100, spent=100, action=HardLimitAction.BLOCK_ALL)
    )
    assert result.outcome is Outcome.REJECT
    assert "resets on 2026-12-01" in (result.error_message or "")
    assert any("2026-12-01" in action for action in result.suggested_actions)


def test_warn_at_the_hard_limit_only_warns() -> None:
    cfg = config(cloud("c"))
    result = route(cfg, request(), budget(100, spent=150, action=HardLimitAction.WARN))
    assert result.backend_name == "c"
    assert any("hard limit" in w for w in result.warnings)


def test_a_request_that_would_overspend_is_excluded_before_the_limit() -> None:
    cfg = config(cloud("c", price=10.0), local("l", priority=99))
    result = route(cfg, request(max_tokens=1000), budget(100, spent=1, reserved=89))
    assert result.annotations["budget_status"] == "soft_limit"
    assert "past its limit" in result.annotations["budget_excluded"]["c"]
    assert result.backend_name == "l"


def test_candidates_above_the_cost_cap_are_excluded_whatever_the_budget() -> None:
    cfg = config(cloud("c", price=1.0), local("l", priority=99))
    result = route(cfg, request(max_cost_usd=0.01))
    assert "cost cap" in result.annotations["budget_excluded"]["c"]
    assert result.backend_name == "l"


def test_a_policy_cost_cap_applies_like_a_request_one() -> None:
    cfg = config(
        cloud("c", price=1.0),
        policies=(PolicySnapshot("cheap-only", "*", max_cost_per_request_usd=0.001),),
    )
    result = route(cfg, request())
    assert result.outcome is Outcome.REJECT
    assert "policy:cheap-only" in result.rejections[0].reason


def test_the_strictest_action_of_budgets_at_their_hard_limit_applies() -> None:
    cfg = config(cloud("c"), local("l"))
    result = route(
        cfg,
        request(),
        budget(10, spent=10, action=HardLimitAction.WARN, name="team"),
        budget(10, spent=10, action=HardLimitAction.BLOCK_ALL, name="global"),
    )
    assert result.outcome is Outcome.REJECT


def test_estimates_are_exactly_estimate_cost_for_every_candidate() -> None:
    from routing.pipeline.budgets import estimate_cost

    fleet = [
        cloud("c1", price=0.37),
        cloud("c2", price=1.1),
        local("l", models=(offer(input_cost_per_1k=0.0, output_cost_per_1k=0.0),)),
    ]
    cfg = config(*fleet)
    for req in (request(text="x" * 1234, max_tokens=77), request(privacy="restricted")):
        for _ in range(2):  # the second run uses the snapshot's warm index
            result = route(cfg, req, budget(100, spent=80))
            costs = result.annotations["estimated_cost_usd"]
            tokens_in = result.requirements.estimated_input_tokens
            tokens_out = result.requirements.estimated_output_tokens
            assert costs == {
                b.name: estimate_cost(b.models["llama3"], tokens_in, tokens_out)
                for b in fleet
                if b.name in costs
            }
            assert costs


def test_budgets_leave_room_only_strictly_below_the_soft_limit() -> None:
    from routing.pipeline.budgets import budgets_leave_room

    assert budgets_leave_room([budget(100.0, spent=74.0, reserved=0.5)], 0.49)
    assert not budgets_leave_room([budget(100.0, spent=74.0, reserved=0.5)], 0.5)
    assert not budgets_leave_room([budget(100.0)], float("nan"))
    assert budgets_leave_room([budget(None, spent=1e9)], 5.0)
    assert not budgets_leave_room([budget(), budget(10.0, spent=7.5)], 0.0)


def test_figures_that_leave_room_for_every_estimate_decide_alike() -> None:
    from routing.pipeline.budgets import budgets_leave_room

    cfg = config(local("l"), cloud("c"))

    def decided(*budgets: object) -> dict[str, object]:
        data = route(cfg, request(), *budgets).to_dict()  # type: ignore[arg-type]
        data.pop("pipeline_duration_us")
        for entry in data["trace"]:
            entry.pop("duration_us")
        return data

    idle, busy = budget(100.0), budget(100.0, spent=60.0, reserved=14.0)
    top = max(route(cfg, request(), busy).annotations["estimated_cost_usd"].values())
    assert budgets_leave_room([busy], top)
    assert decided(idle) == decided(busy)


def test_an_estimate_that_exactly_fills_the_budget_is_not_excluded() -> None:
    cfg = config(
        cloud(
            "c",
            models=(
                offer("llama3", input_cost_per_1k=0.0025, output_cost_per_1k=0.01),
            ),
        )
    )
    # 9 of 10 slots of $0.0125 taken; 0.125 - 0.1125 is 0.012499999999999997 in floats.
    result = route(
        cfg, request(text="x" * 4000, max_tokens=1000), budget(0.125, reserved=0.1125)
    )
    assert result.estimated_cost_usd == 0.0125
    assert result.backend_name == "c"
