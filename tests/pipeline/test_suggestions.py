"""A reject names the way out: models that would serve it, or "did you mean"."""

from __future__ import annotations

from typing import Any

from routing.pipeline import MODEL_NOT_FOUND, NO_VIABLE_BACKEND
from routing.pipeline.types import HardLimitAction, Health, Outcome, PolicySnapshot

from .fleet import budget, cloud, config, local, offer, request, route

IMAGE = [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]


def vision_fleet(**kwargs: Any) -> Any:
    """llama3.1:8b (text only, local), llava:13b (vision, local, alias 'vision'),
    gpt-4o (vision, cloud, priced)."""
    return config(
        local("gpu-a", models=(offer("llama3.1:8b"),)),
        local("gpu-b", models=(offer("llava:13b", vision=True),)),
        cloud(
            "cloud-gpt",
            models=(
                offer(
                    "gpt-4o",
                    vision=True,
                    input_cost_per_1k=0.01,
                    output_cost_per_1k=0.01,
                ),
            ),
        ),
        aliases=kwargs.pop("aliases", {"vision": "llava:13b", "chat": "llama3.1:8b"}),
        **kwargs,
    )


def test_a_vision_reject_names_the_models_and_aliases_that_would_serve_it() -> None:
    result = route(vision_fleet(), request("llama3.1:8b", messages=IMAGE))
    assert result.outcome is Outcome.REJECT
    assert result.error_type == NO_VIABLE_BACKEND
    hint = (
        "Models that would serve this request: 'gpt-4o', 'llava:13b' (alias 'vision')."
    )
    assert result.suggested_actions[0].startswith("Use a backend whose 'llama3.1:8b'")
    assert result.suggested_actions[1] == hint
    assert result.error_message is not None
    assert result.error_message.endswith(hint)
    assert result.to_dict()["error"]["suggested_actions"][1] == hint


def test_a_privacy_reject_names_only_models_in_a_zone_that_passes() -> None:
    result = route(vision_fleet(), request("gpt-4o", privacy="restricted"))
    assert result.outcome is Outcome.REJECT
    assert (
        "Models that would serve this request: 'llama3.1:8b' (alias 'chat'), "
        "'llava:13b' (alias 'vision')." in result.suggested_actions
    )


def test_a_tier_reject_names_models_on_a_backend_of_that_tier() -> None:
    cfg = config(
        local("small", models=(offer("llama3.1:8b"),)),
        local("big", capability_tier=4, models=(offer("qwen:72b"),)),
    )
    result = route(cfg, request("llama3.1:8b", min_tier=4))
    assert result.outcome is Outcome.REJECT
    assert "Models that would serve this request: 'qwen:72b'." in (
        result.suggested_actions
    )


def test_models_failing_the_requirements_or_constraints_are_not_named() -> None:
    # Only gpt-4o has vision, but it is above the cost cap: nothing is named.
    cfg = config(
        local("gpu-a", models=(offer("llama3.1:8b"),)),
        cloud(
            "cloud-gpt",
            models=(offer("gpt-4o", vision=True, input_cost_per_1k=10.0),),
        ),
    )
    result = route(cfg, request("llama3.1:8b", messages=IMAGE, max_cost_usd=0.001))
    assert result.outcome is Outcome.REJECT
    assert not any("would serve" in a for a in result.suggested_actions)
    assert "would serve" not in (result.error_message or "")


def test_disabled_unhealthy_over_budget_or_policy_blocked_models_are_not_named() -> (
    None
):
    cfg = config(
        local("gpu-a", models=(offer("llama3.1:8b"),)),
        local("off", enabled=False, models=(offer("llava:13b", vision=True),)),
        local("sick", health=Health.UNHEALTHY, models=(offer("pixtral", vision=True),)),
        cloud("cloud-gpt", models=(offer("gpt-4o", vision=True, input_cost_per_1k=1),)),
        local("eu", models=(offer("gemma3", vision=True),)),
        policies=(PolicySnapshot("gemma-eu", "gemma*", privacy="zone:eu-private"),),
    )
    blocked = budget(10.0, spent=10.0, action=HardLimitAction.BLOCK_CLOUD)
    result = route(cfg, request("llama3.1:8b", messages=IMAGE), blocked)
    assert result.outcome is Outcome.REJECT
    assert not any("would serve" in a for a in result.suggested_actions)
    # With room in the budget, gpt-4o would serve it.
    result = route(cfg, request("llama3.1:8b", messages=IMAGE), budget(100.0))
    assert "Models that would serve this request: 'gpt-4o'." in (
        result.suggested_actions
    )


def test_models_already_tried_as_fallbacks_are_not_named_again() -> None:
    # llava:13b is the fallback of llama3.1:8b, but its one backend is loaded
    # with a text-only offer here: both attempts are rejected.
    cfg = config(
        local("gpu-a", models=(offer("llama3.1:8b"),)),
        local("gpu-b", models=(offer("llava:13b"),)),
        cloud("cloud-gpt", models=(offer("gpt-4o", vision=True),)),
        fallbacks={"llama3.1:8b": ("llava:13b",)},
    )
    result = route(cfg, request("llama3.1:8b", messages=IMAGE))
    assert result.models_tried == ("llama3.1:8b", "llava:13b")
    assert "Models that would serve this request: 'gpt-4o'." in (
        result.suggested_actions
    )


def test_at_most_five_models_are_named_in_name_order() -> None:
    names = [f"m{i}" for i in (7, 3, 5, 1, 6, 2, 4)]
    cfg = config(
        local("plain", models=(offer("base"),)),
        *(local(f"b-{n}", models=(offer(n, vision=True),)) for n in names),
    )
    result = route(cfg, request("base", messages=IMAGE))
    assert (
        "Models that would serve this request: 'm1', 'm2', 'm3', 'm4', 'm5' "
        "and 2 more." in result.suggested_actions
    )


def test_a_typo_suggests_the_closest_served_names_and_aliases() -> None:
    result = route(vision_fleet(), request("llama3.1-8b"))
    assert result.error_type == MODEL_NOT_FOUND
    # Closest first: llava:13b is close enough to be named too.
    hint = "Did you mean 'llama3.1:8b' or 'llava:13b'?"
    assert result.suggested_actions[0] == hint
    assert (result.error_message or "").endswith(hint)
    result = route(vision_fleet(), request("visoin"))
    assert result.suggested_actions[0] == "Did you mean 'vision'?"


def test_a_name_close_to_nothing_gets_no_did_you_mean() -> None:
    result = route(vision_fleet(), request("completely-different"))
    assert result.error_type == MODEL_NOT_FOUND
    assert not any("Did you mean" in a for a in result.suggested_actions)
    assert "Did you mean" not in (result.error_message or "")
