"""A fallback decision's trace reads per model tried, each group saying why it ended."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from routing.services.decision_templates import decision_view
from routing.services.demo import demo_fleet_load
from tests.explorer.conftest import record

pytestmark = pytest.mark.django_db

GROUP = re.compile(r'<details class="trace-group"( open)?>(.*?)</details>', re.S)


def _groups(html: str) -> list[tuple[bool, str]]:
    return [(bool(m.group(1)), m.group(2)) for m in GROUP.finditer(html)]


def test_a_fallback_decision_shows_one_collapsible_group_per_model_tried(
    staff_client,
):
    demo_fleet_load()
    # Restricted privacy: openai and anthropic are cloud, so gpt-4o falls back
    # to claude-sonnet-4-5, then to llama3.1:70b on the local vllm-a100.
    decision = record("gpt-4o", privacy="restricted")
    view = decision_view(decision)
    assert view["details"]["models_tried"] == [
        "gpt-4o",
        "claude-sonnet-4-5",
        "llama3.1:70b",
    ]
    assert len(view["trace"]) == 15

    html = staff_client.get(
        reverse("explorer:decision", args=[decision.id])
    ).content.decode()
    groups = _groups(html)
    assert [opened for opened, _ in groups] == [False, False, True]
    primary, first, last = (body for _, body in groups)
    assert "primary: gpt-4o" in primary
    assert (
        "no viable backend: privacy excluded 1 → fell back to &#x27;claude-sonnet-4-5&#x27;"
        in primary
    )
    assert "openai" in primary and "anthropic" not in primary
    assert "fallback 1: claude-sonnet-4-5" in first
    assert "fell back to &#x27;llama3.1:70b&#x27;" in first
    assert "anthropic" in first
    assert "fallback 2: llama3.1:70b" in last and "routed to vllm-a100" in last
    for _, body in groups:  # every stage of every attempt, in its own group
        assert body.count('<li class="step') == 5


def test_a_single_model_decision_keeps_one_plain_trace_without_groups(staff_client):
    demo_fleet_load()
    decision = record("llama3.1:8b")
    view = decision_view(decision)
    assert view["details"]["models_tried"] == ["llama3.1:8b"]

    html = staff_client.get(
        reverse("explorer:decision", args=[decision.id])
    ).content.decode()
    assert "trace-group" not in html
    assert html.count('<li class="step') == len(view["trace"]) == 5


def test_a_rejected_fallback_decision_says_why_its_last_group_ended(staff_client):
    demo_fleet_load()
    # No private zone serves anything: every model of the chain is excluded.
    decision = record("gpt-4o", privacy="zone:nowhere")
    assert decision.outcome == "reject"

    html = staff_client.get(
        reverse("explorer:decision", args=[decision.id])
    ).content.decode()
    groups = _groups(html)
    assert len(groups) == 3 and groups[-1][0] is True
    assert "rejected: no viable backend: privacy excluded 1" in groups[-1][1]
