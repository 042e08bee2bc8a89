"""request_analyzer: aliases, policies, requirements, candidates."""

from __future__ import annotations

import inspect
import pickle

import pytest

from routing.pipeline import MODEL_NOT_FOUND, NO_VIABLE_BACKEND, RoutingRequest
from routing.pipeline.analysis import analyse_body
from routing.pipeline.intent import Requirements
from routing.pipeline.types import Health, Outcome, PolicySnapshot, TierMode
from routing.pipeline_build import is_compiled

from .fleet import backend, cloud, config, local, offer, request, route


def test_vision_is_required_when_any_content_part_is_an_image() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                ],
            }
        ]
    }
    assert analyse_body(body, 256).vision


def test_tools_and_json_mode_are_read_from_the_body() -> None:
    body = {
        "messages": [],
        "tools": [{"type": "function"}],
        "response_format": {"type": "json_schema"},
    }
    req = analyse_body(body, 256)
    assert req.tools and req.json_mode
    assert not analyse_body({"tools": [], "response_format": {"type": "text"}}, 1).tools


def test_input_tokens_are_the_ceiling_of_text_characters_over_four() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "abcde"},
            {"role": "user", "content": [{"type": "text", "text": "xyz"}]},
        ]
    }
    assert analyse_body(body, 256).estimated_input_tokens == 2  # ceil(8 / 4)


def test_output_tokens_are_max_tokens_or_the_configured_default() -> None:
    assert analyse_body({"max_tokens": 900}, 256).estimated_output_tokens == 900
    assert analyse_body({}, 256).estimated_output_tokens == 256
    assert analyse_body({"max_tokens": True}, 64).estimated_output_tokens == 64


def test_odd_bodies_never_crash_the_analysis() -> None:
    for body in (
        {"messages": "nope"},
        {"messages": [None, 3, {"content": None}, {"content": [1, {"type": 2}]}]},
        {"response_format": "json"},
        {"max_tokens": "lots"},
    ):
        analyse_body(body, 10)


def test_an_alias_resolves_to_its_model_before_routing() -> None:
    cfg = config(local("a"), aliases={"fast": "llama3"})
    result = route(cfg, request("fast"))
    assert result.outcome is Outcome.ROUTE
    assert (result.requested_model, result.model) == ("fast", "llama3")


def test_an_alias_cycle_is_a_model_not_found_reject_with_the_alias_message() -> None:
    cfg = config(local("a"), aliases={"x": "y", "y": "x"})
    result = route(cfg, request("x"))
    assert result.error_type == MODEL_NOT_FOUND
    assert "cycle" in (result.error_message or "")


def test_a_model_no_backend_offers_is_model_not_found_naming_both_names() -> None:
    cfg = config(local("a"), aliases={"smart": "gpt-9"})
    result = route(cfg, request("smart"))
    assert result.outcome is Outcome.REJECT
    assert result.error_type == MODEL_NOT_FOUND
    assert "gpt-9" in (result.error_message or "")
    assert "smart" in (result.error_message or "")


def test_disabled_and_unhealthy_backends_are_excluded_with_a_reason() -> None:
    cfg = config(
        local("off", enabled=False),
        local("sick", health=Health.UNHEALTHY),
    )
    result = route(cfg, request())
    assert result.error_type == NO_VIABLE_BACKEND
    reasons = {r.backend: r.reason for r in result.rejections}
    assert reasons["off"] == "disabled by an operator"
    assert "unhealthy" in reasons["sick"]
    assert "Enable backend 'off'." in result.suggested_actions


def test_unknown_health_and_loading_backends_stay_candidates() -> None:
    cfg = config(
        local("new", health=Health.UNKNOWN), local("warm", health=Health.LOADING)
    )
    result = route(cfg, request())
    first = result.trace[0]
    assert set(first.candidates_after) == {"new", "warm"}


def test_backends_not_serving_the_model_are_counted_not_listed() -> None:
    cfg = config(local("a"), backend("b", models=(offer("mistral"),)))
    result = route(cfg, request())
    assert result.annotations["backends_not_serving"] == 1
    assert "b" not in result.trace[0].candidates_after


def test_a_policy_matching_an_alias_hop_applies_to_the_resolved_model() -> None:
    cfg = config(
        local("a"),
        cloud("b"),
        aliases={"secret-chat": "llama3"},
        policies=(PolicySnapshot("confidential", "secret-*", privacy="restricted"),),
    )
    result = route(cfg, request("secret-chat"))
    assert result.matched_policies == ("confidential",)
    assert result.backend_name == "a"


def test_the_first_policy_by_order_then_name_wins() -> None:
    cfg = config(
        local("a"),
        policies=(
            PolicySnapshot("zz", "llama*", order=1),
            PolicySnapshot("aa", "llama*", order=1),
            PolicySnapshot("first", "*", order=0),
        ),
    )
    assert route(cfg, request()).matched_policies == ("first",)


def test_a_request_with_no_body_at_all_still_routes() -> None:
    cfg = config(local("a"))
    from .fleet import context, default_pipeline

    result = default_pipeline().route(RoutingRequest(model="llama3"), context(cfg))
    assert result.outcome is Outcome.ROUTE


def test_enum_values_compare_equal_to_the_model_layers_plain_strings() -> None:
    # The model layer stores plain strings; its adapter hands the pipeline the
    # enums (the compiled pipeline enforces the types), which equal the strings.
    cfg = config(local("sick", health=Health("unhealthy")), local("ok"))
    result = route(cfg, request(min_tier=2, tier_mode=TierMode("flexible")))
    assert result.backend_name == "ok"
    assert result.constraints.tier_mode == "flexible"
    assert cfg.backends[0].health == "unhealthy"
    assert "sick" in result.annotations["request_analyzer_excluded"]


def test_requirements_are_a_value_equal_hashable_and_picklable() -> None:
    facts = Requirements(
        tools=True, estimated_input_tokens=7, estimated_output_tokens=9
    )
    same = Requirements(False, True, False, 7, 9)
    assert facts == same and hash(facts) == hash(same)
    assert facts != Requirements(tools=True) and facts != facts.to_dict()
    assert pickle.loads(pickle.dumps(facts)) == facts
    assert facts.estimated_total_tokens == 16
    assert repr(facts) == (
        "Requirements(vision=False, tools=True, json_mode=False, "
        "estimated_input_tokens=7, estimated_output_tokens=9)"
    )


def test_requirements_cannot_be_changed_once_compiled() -> None:
    facts = Requirements(vision=True)
    if not is_compiled():
        # Sources: mypy (strict on the pipeline) refuses the assignment.
        assert "Final" in inspect.getsource(Requirements.__init__)
        return
    with pytest.raises(AttributeError, match="not writable"):
        facts.vision = False  # type: ignore[misc]
    assert facts.vision is True
