"""``intent.exclude_failing``: a pure rule's verdicts, kept in the index, applied
exactly as excluding each failing candidate one by one would."""

from __future__ import annotations

from routing.pipeline import RoutingIntent, RoutingRequest
from routing.pipeline.index import SnapshotIndex
from routing.pipeline.types import BackendSnapshot, ModelOffer

from .fleet import backend, cloud, config, context, local


def slow(
    backend: BackendSnapshot, offer: ModelOffer | None, limit: float
) -> tuple[str, str] | None:
    ms = backend.latency_ema_ms
    if ms is None or ms <= limit:
        return None
    return f"latency {ms:.0f} ms", f"Speed up '{backend.name}'."


FLEET = config(
    local("a", latency_ema_ms=900.0),
    cloud("b", latency_ema_ms=10.0),
    local("c", latency_ema_ms=1200.0),
    local("off", enabled=False, latency_ema_ms=5000.0),
    cloud("d", latency_ema_ms=3000.0),
)


def _intent() -> RoutingIntent:
    intent = RoutingIntent(
        RoutingRequest(model="llama3"), context(FLEET), SnapshotIndex(FLEET)
    )
    intent.current_reconciler = "speed"
    intent.add_serving()
    intent.exclude("off", "disabled")
    return intent


def test_excluding_failing_candidates_equals_excluding_them_one_by_one() -> None:
    by_rule = _intent()
    assert by_rule.exclude_failing(slow, 1000.0) == 2
    one_by_one = _intent()
    for candidate in one_by_one.candidate_list():
        verdict = slow(candidate, None, 1000.0)
        if verdict is not None:
            one_by_one.exclude(candidate.name, *verdict)
    assert by_rule.rejections == one_by_one.rejections
    assert list(by_rule.candidates) == list(one_by_one.candidates) == ["a", "b"]
    assert (
        by_rule.stage_reasons
        == one_by_one.stage_reasons
        == {
            "off": "disabled",
            "c": "latency 1200 ms",
            "d": "latency 3000 ms",
        }
    )
    assert by_rule.excluded["off"].reason == "disabled"  # first reason kept


def test_a_rule_is_worked_out_once_per_backend_and_question_per_snapshot() -> None:
    calls: list[str] = []

    def counted(
        backend: BackendSnapshot, offer: ModelOffer | None, limit: float
    ) -> tuple[str, str] | None:
        calls.append(backend.name)
        return slow(backend, offer, limit)

    index = SnapshotIndex(FLEET)
    for _ in range(3):
        intent = RoutingIntent(RoutingRequest(model="llama3"), context(FLEET), index)
        intent.add_serving()
        intent.exclude_failing(counted, 1000.0)
    assert sorted(calls) == ["a", "b", "c", "d", "off"]
    intent.exclude_failing(counted, 100.0)  # another question: worked out anew
    assert len(calls) == 10


def test_a_candidate_added_by_hand_is_judged_by_the_rule_too() -> None:
    intent = _intent()
    outsider = backend("outsider", latency_ema_ms=4000.0)
    assert intent.add_candidate(outsider)
    replaced = backend("b", latency_ema_ms=2000.0)  # not the snapshot's "b"
    assert not intent.add_candidate(replaced)  # "b" is already a candidate
    intent.exclude_failing(slow, 1000.0)
    assert list(intent.candidates) == ["a", "b"]
    assert [r.backend for r in intent.rejections] == ["off", "c", "d", "outsider"]


def _one_by_one(intent: RoutingIntent, limit: float) -> None:
    for candidate in intent.candidate_list():
        verdict = slow(candidate, None, limit)
        if verdict is not None:
            intent.exclude(candidate.name, *verdict)


def test_a_kept_step_gives_what_excluding_one_by_one_gives_on_any_path() -> None:
    index = SnapshotIndex(FLEET)

    def fresh() -> RoutingIntent:
        intent = RoutingIntent(RoutingRequest(model="llama3"), context(FLEET), index)
        intent.current_reconciler = "speed"
        intent.add_serving()
        return intent

    for detour in (False, True):
        for _ in range(2):  # the second time the index has the steps
            by_rule, one_by_one = fresh(), fresh()
            if detour:  # a plain exclusion leaves the kept path
                by_rule.exclude("b", "manual")
                one_by_one.exclude("b", "manual")
            by_rule.exclude_failing(slow, 2000.0)
            by_rule.exclude_failing(slow, 1000.0)
            _one_by_one(one_by_one, 2000.0)
            _one_by_one(one_by_one, 1000.0)
            assert by_rule.rejections == one_by_one.rejections
            assert list(by_rule.candidates) == list(one_by_one.candidates)
            assert by_rule.stage_reasons == one_by_one.stage_reasons


def test_changes_after_a_kept_step_never_reach_the_index_or_other_requests() -> None:
    index = SnapshotIndex(FLEET)

    def fresh() -> RoutingIntent:
        intent = RoutingIntent(RoutingRequest(model="llama3"), context(FLEET), index)
        intent.begin_stage("speed")
        intent.add_serving()
        return intent

    first = fresh()
    saved = first.checkpoint()
    first.exclude_failing(slow, 1000.0)  # takes the index's dicts as they are
    first.restore(saved)  # deletes from its own copy
    assert first.excluded == {} and len(first.candidates) == 5
    first.exclude_failing(slow, 1000.0)
    first.exclude("a", "by hand")  # the same stage, after the step
    assert sorted(first.excluded) == ["a", "c", "d", "off"]

    second = fresh()
    second.exclude_failing(slow, 1000.0)
    assert list(second.excluded) == ["c", "off", "d"]
    assert [r.backend for r in second.rejections] == ["c", "off", "d"]
    assert second.stage_reasons == {
        "c": "latency 1200 ms",
        "off": "latency 5000 ms",
        "d": "latency 3000 ms",
    }
    assert list(second.candidates) == ["a", "b"]


def test_a_kept_step_after_an_exclusion_by_hand_adds_to_it() -> None:
    index = SnapshotIndex(FLEET)
    for _ in range(2):  # worked out, then taken from the index
        intent = RoutingIntent(RoutingRequest(model="llama3"), context(FLEET), index)
        intent.begin_stage("speed")
        intent.add_serving()
        intent.exclude("zz", "not even serving")  # the attempt's own exclusion
        intent.exclude_failing(slow, 1000.0)
        assert [r.backend for r in intent.rejections] == ["zz", "c", "off", "d"]
        assert list(intent.candidates) == ["a", "b"]
