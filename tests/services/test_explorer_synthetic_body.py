"""The simulator's and re-run's synthetic body keeps the recorded estimates,
now that images count as input tokens."""

from __future__ import annotations

from routing.pipeline.analysis import analyse_body
from routing.services.explorer import synthetic_body


def test_a_vision_body_estimates_the_input_tokens_it_was_built_from() -> None:
    for tokens in (85, 200, 1000, 5000):
        body = synthetic_body(
            input_tokens=tokens,
            output_tokens=10,
            vision=True,
            tools=False,
            json_mode=False,
        )
        req = analyse_body(body, 256)
        assert req.vision
        assert req.estimated_input_tokens == tokens


def test_a_vision_body_under_one_image_estimates_one_low_detail_image() -> None:
    body = synthetic_body(
        input_tokens=3, output_tokens=10, vision=True, tools=False, json_mode=False
    )
    assert analyse_body(body, 256).estimated_input_tokens == 85
