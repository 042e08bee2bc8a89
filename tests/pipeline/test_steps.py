"""Memoised candidate steps: the same result as excluding one by one, or nothing."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import given

from routing.pipeline import RoutingIntent, default_pipeline
from routing.pipeline.index import index_for
from routing.pipeline.intent import initial_step, prepare_step
from routing.pipeline.reconcilers.request_analyzer import RequestAnalyzer
from routing.pipeline.types import ErrorPolicy

from .fleet import cloud, config, context, local, request
from .test_properties import FAST, PIPELINE, worlds

CFG = config(local("a"), cloud("b"), local("c"), cloud("d"))


def _analysed() -> RoutingIntent:
    intent = RoutingIntent(request(), context(CFG), index_for(CFG))
    intent.current_reconciler = "request_analyzer"
    RequestAnalyzer().reconcile(intent)
    intent.current_reconciler = "privacy"
    return intent


def _state(intent: RoutingIntent) -> tuple[Any, ...]:
    return (
        list(intent.candidates.items()),
        list(intent.excluded.items()),
        intent.rejections,
        intent.excluded_by,
    )


def _rejections(intent: RoutingIntent, *names: str) -> list[Any]:
    ghost = RoutingIntent(request(), context(CFG), index_for(CFG))
    ghost.current_reconciler = intent.current_reconciler
    ghost.model = intent.model
    ghost.exclude_many((name, f"no {name}", f"fix {name}") for name in names)
    return list(ghost.rejections)


def test_a_step_gives_the_same_state_as_excluding_one_by_one() -> None:
    by_step, one_by_one = _analysed(), _analysed()
    origin = by_step.step_origin
    assert origin is not None
    rejections = _rejections(by_step, "b", "d")
    step = prepare_step(origin, rejections)
    assert step is not None
    recorded: dict[str, str] = {"earlier": "kept"}
    assert by_step.apply_step(step, recorded)
    expected: dict[str, str] = {"earlier": "kept"}
    one_by_one.exclude_rejections(rejections, expected)
    assert _state(by_step) == _state(one_by_one)
    assert recorded == expected
    assert by_step.step_origin is step.after


def test_a_step_does_not_apply_once_the_candidates_changed() -> None:
    intent = _analysed()
    origin = intent.step_origin
    assert origin is not None
    step = prepare_step(origin, _rejections(intent, "b"))
    assert step is not None
    intent.exclude("c", "gone")
    before = _state(intent)
    assert intent.step_origin is None
    assert not intent.apply_step(step)
    assert _state(intent) == before


def test_unmemoised_candidates_have_no_origin() -> None:
    intent = RoutingIntent(request(), context(CFG), index_for(CFG))
    intent.add_candidates({b.name: b for b in CFG.backends})
    assert intent.step_origin is None


def test_the_initial_step_equals_excluding_then_adding_on_a_fresh_intent() -> None:
    index = index_for(CFG)
    available = {b.name: b for b in CFG.backends[:2]}

    def fresh() -> RoutingIntent:
        intent = RoutingIntent(request(), context(CFG), index)
        intent.current_reconciler = "request_analyzer"
        return intent

    by_step, one_by_one = fresh(), fresh()
    rejections = _rejections(by_step, "c", "d")
    step = initial_step(available, rejections)
    assert step is not None
    assert by_step.apply_step(step)
    one_by_one.exclude_rejections(rejections)
    one_by_one.add_candidates(available, memoised=True)
    assert _state(by_step) == _state(one_by_one)
    assert by_step.step_origin is available is one_by_one.step_origin
    used = fresh()
    used.exclude("x", "ghost")
    assert not used.apply_step(step)
    assert initial_step(available, _rejections(by_step, "a")) is None


def test_prepare_step_refuses_repeated_or_unknown_backends() -> None:
    intent = _analysed()
    origin = intent.step_origin
    assert origin is not None
    twice = _rejections(intent, "b") * 2
    assert prepare_step(origin, twice) is None
    assert prepare_step(origin, _rejections(intent, "zz")) is None


class _Boom:
    name = "boom"
    error_policy = ErrorPolicy.FAIL_OPEN

    def reconcile(self, intent: RoutingIntent) -> None:
        intent.exclude("a", "boom")
        raise RuntimeError("kaput")


class _Spy:
    error_policy = ErrorPolicy.FAIL_CLOSED

    def __init__(self, name: str, seen: list[object]) -> None:
        self.name = name
        self.seen = seen

    def reconcile(self, intent: RoutingIntent) -> None:
        self.seen.append(intent.step_origin)


def test_a_fail_open_rollback_restores_the_origin_too() -> None:
    seen: list[object] = []
    pipeline = default_pipeline(
        extra=[_Spy("before", seen), _Boom(), _Spy("after", seen)]
    )
    result = pipeline.route(request(privacy="restricted"), context(CFG))
    assert result.backend_name == "a"
    before, after = seen
    assert before is not None and after is before


def _plain(result: Any) -> Any:
    data = result.to_dict()
    data.pop("pipeline_duration_us")
    for entry in data["trace"]:
        entry.pop("duration_us")
    return data


@FAST
@given(worlds())
def test_memoised_steps_and_price_tables_never_change_a_result(world: Any) -> None:
    cfg, req, budgets = world
    ctx = context(cfg, *budgets)
    with_memos = _plain(PIPELINE.route(req, ctx))
    with (
        mock.patch.object(RoutingIntent, "apply_step", return_value=False),
        mock.patch.object(RoutingIntent, "step_origin", None),
    ):
        without = _plain(PIPELINE.route(req, ctx))
    assert with_memos == without


def test_requests_differing_only_in_cost_cap_share_one_privacy_memo() -> None:
    # The privacy memo holds candidate-set copies: keyed by the whole constraints,
    # every distinct cost cap or tier would add one (138 MB for 2000 cost caps at
    # 1000 backends before this was fixed).
    cfg = config(local("a"), cloud("b"), local("c"))
    for cap in range(1, 41):
        for tier in (1, 2):
            PIPELINE.route(
                request(privacy="restricted", max_cost_usd=cap / 10, min_tier=tier),
                context(cfg),
            )
    keys = [key for key in index_for(cfg)._constraint_cache if key[0] == "privacy"]
    assert len(keys) == 1
