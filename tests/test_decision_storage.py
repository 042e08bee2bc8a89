"""The compact stored form of a decision gives back exactly today's full view."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.decision_storage import (
    DELTA,
    EMPTY,
    Deflater,
    decision_view,
    deflate,
    encode,
    expand,
    is_compact,
    pack,
    replay_fields,
    unpack,
)
from routing.dev import golden
from routing.dev.bench import BUDGET, REQUEST, build_fleet
from routing.pipeline import RoutingContext, RoutingResult, default_pipeline
from routing.replay import PipelineSpec, ReplayPool, decision_row, dump_world
from routing.services.decisions import decision_columns


def stored(columns: dict[str, Any]) -> dict[str, Any]:
    """``columns`` encoded and passed through JSON text, as a database keeps them."""
    encoded = encode(columns)
    row = {key: json.loads(json.dumps(encoded[key])) for key in EMPTY}
    row["backend_name"] = encoded["backend_name"]
    row["model"] = encoded["model"]
    return row


def full(columns: dict[str, Any]) -> dict[str, Any]:
    return {key: json.loads(json.dumps(columns[key])) for key in EMPTY}


def generated_results(count: int, seed: int) -> list[RoutingResult]:
    """Routes of generated requests over generated fleets, policies, aliases,
    fallback chains, budgets and strategies (``routing.dev.golden``)."""
    rng = random.Random(seed)
    results: list[RoutingResult] = []
    version = 0
    while len(results) < count:
        version += 1
        config = golden.gen_config(rng, version)
        for _ in range(golden.REQUESTS_PER_CONFIG):
            budgets = tuple(golden.gen_budget(rng, i) for i in range(rng.randint(0, 3)))
            settings, extra = golden.gen_settings(rng)
            pipeline = default_pipeline(settings, extra=extra)
            request = golden.gen_request(rng)
            results.append(pipeline.route(request, golden._context(config, budgets)))
    return results


def test_expanding_a_stored_decision_gives_back_the_full_view_key_order_included() -> (
    None
):
    results = generated_results(2000, seed=15)
    outcomes = {r.outcome.value for r in results}
    assert outcomes == {"route", "queue", "reject"}
    assert any(r.fallback_used for r in results)
    for result in results:
        columns = decision_columns(result)
        row = stored(columns)
        assert is_compact(row["trace"])  # no decision fell back to the full form
        assert json.dumps(expand(row)) == json.dumps(full(columns))


def test_the_replay_reads_of_a_compact_row_what_the_full_view_holds() -> None:
    results = generated_results(600, seed=16)
    strategies = set()
    turns = set()
    for result in results:
        columns = decision_columns(result)
        row = stored(columns)
        view = full(columns)
        strategy = view["annotations"].get("strategy")
        strategies.add(strategy)
        backend = columns["backend_name"]
        breakdown = view["annotations"].get("score_breakdown") or {}
        turn = (breakdown.get(backend) or {}).get("turn")
        turns.add(turn if strategy == "round_robin" else None)
        tier = (view["details"].get("backend") or {}).get("capability_tier")
        requirements, constraints, *rest = replay_fields(
            row["trace"]["z"], backend_name=backend, model=columns["model"]
        )
        assert (json.loads(requirements), json.loads(constraints), *rest) == (
            view["requirements"],
            view["constraints"],
            strategy,
            turn if strategy == "round_robin" else None,
            tier,
            None,  # encoded without the request's own constraints
        )
    assert {"round_robin", "smart"} <= strategies
    assert len(turns - {None}) > 1  # round-robin turns were read, not just None


def test_a_fifty_backend_decision_is_stored_in_a_fraction_of_its_json() -> None:
    result = default_pipeline().route(
        REQUEST, RoutingContext(build_fleet(50), (BUDGET,))
    )
    columns = decision_columns(result)
    row = stored(columns)
    assert expand(row) == full(columns)
    whole = len(json.dumps(full(columns)))
    compact = sum(len(json.dumps(row[key])) for key in EMPTY)
    assert compact * 4 < whole


def test_a_row_stored_before_the_compact_form_is_read_as_it_is() -> None:
    result = default_pipeline().route(REQUEST, RoutingContext(build_fleet(5), ()))
    columns = full(decision_columns(result))

    class Row:
        backend_name = result.backend_name
        model = result.model
        requirements = columns["requirements"]
        constraints = columns["constraints"]
        annotations = columns["annotations"]
        trace = columns["trace"]
        warnings = columns["warnings"]
        details = columns["details"]

    assert not is_compact(Row.trace)
    assert decision_view(Row()) == columns


def entry(model: str, reconciler: str, before: list[str], after: list[str]) -> Any:
    return {
        "reconciler": reconciler,
        "error_policy": "fail_closed",
        "model": model,
        "candidates_before": before,
        "candidates_after": after,
        "excluded": [],
        "duration_us": 1.5,
        "error": None,
    }


def columns_with(
    *, annotations: dict[str, Any], trace: list[Any], details: Any = None
) -> dict[str, Any]:
    return {
        "backend_name": "",
        "model": "m",
        "requirements": {},
        "constraints": {},
        "annotations": annotations,
        "trace": trace,
        "warnings": [],
        "details": details or {},
    }


def test_values_json_tells_apart_stay_apart_in_a_backend_map() -> None:
    names = [f"b{i}" for i in range(12)]
    # Each value twice: stored once each, as distinct values and indexes.
    kinds = [1, 1.0, True, -0.0, 0.0, None]
    values = dict(zip(names, kinds + kinds, strict=True))
    columns = columns_with(
        annotations={"scores": values, "same": dict.fromkeys(names, 0.5)},
        trace=[entry("m", "request_analyzer", [], names)],
    )
    back = expand(stored(columns))
    assert json.dumps(back) == json.dumps(full(columns))
    assert [repr(v) for v in back["annotations"]["scores"].values()] == [
        repr(v) for v in kinds + kinds
    ]


def test_what_the_encoder_cannot_shorten_is_kept_as_it_is() -> None:
    odd = ["with space", "", "x" * 100, "y" * 100]
    columns = columns_with(
        annotations={
            "nested": {"with space": [1, 2]},  # not scalar: kept whole
            "unknown_keys": {"nobody": 1},  # not a backend of the trace
            "budget_status": "normal",
        },
        trace=[entry("m", "request_analyzer", [], odd), entry("m", "custom", odd, [])],
        details={"error": {"type": "x", "rejections": [{"backend": "elsewhere"}]}},
    )
    row = stored(columns)
    assert is_compact(row["trace"])
    assert row["annotations"] == {"budget_status": "normal"}
    assert json.dumps(expand(row)) == json.dumps(full(columns))


def test_an_unknown_trace_shape_is_stored_in_the_full_form() -> None:
    columns = columns_with(annotations={}, trace=[{"reconciler": "x"}])
    row = stored(columns)
    assert not is_compact(row["trace"])
    assert expand(row) == full(columns)


def test_a_budget_label_set_in_the_column_after_encoding_is_read_back() -> None:
    """PostgreSQL's write relabels ``budget_status`` in the annotations column."""
    columns = columns_with(
        annotations={"budget_status": "normal", "strategy": "smart"},
        trace=[entry("m", "request_analyzer", [], ["a"])],
    )
    row = stored(columns)
    row["annotations"]["budget_status"] = "soft_limit"
    assert list(expand(row)["annotations"].items()) == [
        ("budget_status", "soft_limit"),
        ("strategy", "smart"),
    ]


@given(st.lists(st.integers(min_value=0, max_value=5000), max_size=60))
def test_packed_integers_unpack_to_the_same_list(values: list[int]) -> None:
    assert unpack(pack(values)) == values


def test_worker_processes_decode_compact_and_delta_rows_as_this_process_does() -> None:
    texts = [
        stored(decision_columns(result)) for result in generated_results(200, seed=17)
    ]
    template = texts[0]["trace"]["z"]
    records = []
    for i, row in enumerate(texts):
        z = row["trace"]["z"]
        # Every other row in the delta form against the first one's text.
        last = (z, None, None) if i % 2 else (None, 7, deflate(z, template))
        records.append(
            ("m", "app", "route", row["backend_name"], row["model"], None)
            + ("{}", "{}", None, None, None, None)
            + last
        )
    templates = {7: template}
    pool = ReplayPool(dump_world(build_fleet(5), (), PipelineSpec()), 2)
    try:
        decoded = [
            pool.decode(records[:100], templates),
            pool.decode(records[100:], templates),
        ]
        rows = [row for part in decoded for row in part.result(timeout=30)]
        broken = pool.decode([records[1][:-3] + ("not json", None, None)], {})
        with pytest.raises(RuntimeError, match="JSONDecodeError"):
            broken.result(timeout=30)
        missing = pool.decode(records[:1], {})
        with pytest.raises(RuntimeError, match="decision template 7 is missing"):
            missing.result(timeout=30)
        # The worker answered the errors and goes on working.
        assert pool.decode(records[:1], templates).result(timeout=30) == rows[:1]
    finally:
        pool.close()
    assert rows == [decision_row(record, templates.__getitem__) for record in records]
    plain = [
        decision_row(r[:-3] + (t["trace"]["z"], None, None))
        for r, t in zip(records, texts, strict=True)
    ]
    assert rows == plain  # the delta form reads as the plain compact form
    assert any(row.turn is not None for row in rows)  # round-robin turns crossed


def test_a_delta_against_a_template_expands_to_the_full_view() -> None:
    results = generated_results(300, seed=18)
    template = stored(decision_columns(results[0]))["trace"]["z"]
    deflater = Deflater(template)
    sizes = []
    for result in results:
        columns = decision_columns(result)
        row = stored(columns)
        text = row["trace"]["z"]
        row["trace"] = {"v": DELTA, "t": 1, "b": deflater.delta(text)}
        assert is_compact(row["trace"])
        assert expand(row, {1: template}.__getitem__) == full(columns)
        sizes.append(len(row["trace"]["b"]) / len(text))
    with pytest.raises(LookupError, match="template 1 is missing"):
        expand(row, {}.__getitem__)
    with pytest.raises(ValueError, match="read with its templates"):
        expand(row)
    assert sorted(sizes)[len(sizes) // 2] < 0.5  # a delta is smaller than its text
