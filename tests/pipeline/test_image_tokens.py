"""Image parts are estimated the way providers bill them, per ``detail`` level."""

from __future__ import annotations

from typing import Any

from routing.pipeline.analysis import analyse_body

from .fleet import config, local, offer, request, route


def image_body(*parts: dict[str, Any], text: str = "abcd") -> dict[str, Any]:
    content = [{"type": "text", "text": text}, *parts]
    return {"messages": [{"role": "user", "content": content}]}


def image_url(detail: str | None = None) -> dict[str, Any]:
    url: dict[str, Any] = {"url": "https://example.com/cat.png"}
    if detail is not None:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


def test_a_low_detail_image_is_estimated_at_85_input_tokens() -> None:
    req = analyse_body(image_body(image_url("low")), 256)
    assert req.vision
    assert req.estimated_input_tokens == 1 + 85  # ceil(4 / 4) of text + the image


def test_a_high_auto_or_unspecified_detail_image_is_estimated_at_765_tokens() -> None:
    for detail in ("high", "auto", None):
        req = analyse_body(image_body(image_url(detail)), 256)
        # OpenAI: 85 + 170 per 512-px tile; an unknown size counts as 1024x1024.
        assert req.estimated_input_tokens == 1 + 85 + 4 * 170, detail


def test_every_image_part_counts_including_input_image_detail() -> None:
    body = image_body(
        image_url("low"),
        {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
        {"type": "image"},
    )
    assert analyse_body(body, 256).estimated_input_tokens == 1 + 85 + 85 + 765


def test_a_vision_requests_cost_estimate_grows_with_its_images() -> None:
    priced = offer(vision=True, input_cost_per_1k=0.01, output_cost_per_1k=0.0)
    cfg = config(local("v", models=(priced,)))
    one = route(cfg, request(messages=image_body(image_url())["messages"]))
    two = route(cfg, request(messages=image_body(image_url(), image_url())["messages"]))
    assert one.estimated_cost_usd == round((1 + 765) * 0.01 / 1000, 8)
    assert two.estimated_cost_usd == round((1 + 2 * 765) * 0.01 / 1000, 8)
