"""The official openai SDK through Nexus's proxy to fake upstreams on loopback."""

from __future__ import annotations

import math
import time
from typing import Any

import openai
import pytest

from routing.models import Backend, LedgerEntry, RoutingDecision, UsageReport
from routing.services.passive_health import in_flight_counts
from tests.proxy.conftest import (
    MODEL,
    forget_configuration,
    register,
    stream_post,
    wait_recorded,
)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

MESSAGES = [{"role": "user", "content": "Say hello to the proxy test."}]


def _decision(raw: Any) -> RoutingDecision:
    wait_recorded()
    return RoutingDecision.objects.get(pk=raw.headers["X-Nexus-Decision-Id"])


def _wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_plain_answer_comes_back_and_its_usage_is_booked(sdk, upstreams):
    from decimal import Decimal

    from tests.factories import global_budget

    budget = global_budget()
    budget.monthly_limit_usd = Decimal(100)
    budget.save()
    register(upstreams[0], priority=10, price="1")
    raw = sdk.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    answer = raw.parse()
    assert answer.choices[0].message.content.startswith("Hello from up-0")
    decision = _decision(raw)
    assert raw.headers["X-Request-ID"]
    assert decision.backend_name == "up-0"
    assert [a["outcome"] for a in decision.attempts] == ["ok"]
    assert decision.attempts[0]["status"] == 200
    usage = UsageReport.objects.get(decision_id=decision.pk)
    assert (usage.input_tokens, usage.output_tokens, usage.source) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
        "upstream",
    )
    tokens = answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert usage.cost_usd == Decimal(tokens) / 1000  # $1 per 1k, in and out
    kinds = set(
        LedgerEntry.objects.filter(decision_id=decision.pk).values_list(
            "kind", flat=True
        )
    )
    assert kinds == {"reserve", "release", "spend"}
    budget.refresh_from_db()
    assert budget.spent_usd == usage.cost_usd and budget.reserved_usd == 0
    sent = upstreams[0].hits[0].body
    assert sent["model"] == MODEL and "nexus" not in sent


def test_a_stream_arrives_in_chunks_without_a_usage_chunk_it_did_not_ask_for(
    sdk, upstreams
):
    register(upstreams[0], priority=10)
    chunks = list(
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from up-0")
    assert all(c.usage is None for c in chunks)
    assert upstreams[0].hits[0].body["stream_options"] == {"include_usage": True}
    decision = RoutingDecision.objects.get()
    usage = UsageReport.objects.get(decision_id=decision.pk)
    assert usage.source == "upstream" and usage.output_tokens > 0


def test_a_slow_stream_is_relayed_chunk_by_chunk_as_the_upstream_sends_them(
    sdk, upstreams
):
    register(upstreams[0], priority=10)
    upstreams[0].chunk_delay_s = 0.25  # slow, but within the idle timeout (2 s)
    arrivals = []
    for chunk in sdk.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) >= 3
    # Each piece reaches the client about when the upstream sent it (nothing
    # is held back until the end): the first well before the last.
    assert arrivals[-1] - arrivals[0] >= 0.25 * (len(arrivals) - 2)
    decision = RoutingDecision.objects.get()
    assert [a["outcome"] for a in decision.attempts] == ["ok"]
    assert UsageReport.objects.get(decision_id=decision.pk).source == "upstream"


def test_a_stream_that_asked_for_usage_gets_it(sdk, upstreams):
    register(upstreams[0], priority=10)
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_a_500_fails_over_to_the_next_candidate(sdk, upstreams):
    register(upstreams[0], priority=10)
    register(upstreams[1], priority=20)
    upstreams[0].mode = "500"
    raw = sdk.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert raw.parse().choices[0].message.content.startswith("Hello from up-1")
    decision = _decision(raw)
    assert [(a["backend"], a["outcome"]) for a in decision.attempts] == [
        ("up-0", "failed_over"),
        ("up-1", "ok"),
    ]
    assert decision.attempts[0]["status"] == 500
    assert decision.backend_name == "up-1"


def test_a_refused_connection_fails_over(sdk, upstreams):
    register(upstreams[0], priority=10)
    register(upstreams[1], priority=20)
    upstreams[0].stop()
    answer = sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello from up-1")
    decision = RoutingDecision.objects.get()
    assert "ConnectError" in decision.attempts[0]["error"]


def test_no_answer_before_the_first_byte_timeout_fails_over(sdk, upstreams, settings):
    settings.NEXUS_PROXY_FIRST_BYTE_TIMEOUT_S = 0.5
    register(upstreams[0], priority=10)
    register(upstreams[1], priority=20)
    upstreams[0].mode = "hang"
    answer = sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello from up-1")
    attempt = RoutingDecision.objects.get().attempts[0]
    assert attempt["outcome"] == "failed_over" and "first-byte" in attempt["error"]


def test_a_429_fails_over_and_keeps_the_backend_out_for_its_retry_after(sdk, upstreams):
    register(upstreams[0], priority=10)
    register(upstreams[1], priority=20)
    upstreams[0].mode = "429"
    upstreams[0].retry_after = 30
    sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    upstreams[0].mode = "ok"
    for _ in range(3):
        answer = sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert answer.choices[0].message.content.startswith("Hello from up-1")
    assert len(upstreams[0].hits) == 1
    backend = Backend.objects.get(name="up-0")
    assert backend.health == "unhealthy" and "429" in backend.health_reason


def test_a_client_error_is_passed_on_without_failover(sdk, upstreams):
    register(upstreams[0], priority=10)
    register(upstreams[1], priority=20)
    upstreams[0].mode = "400"
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert "bad request from fake" in str(raised.value)
    assert upstreams[1].hits == []
    assert RoutingDecision.objects.get().attempts[0]["outcome"] == "client_error"


def test_every_attempt_failing_answers_502_naming_each(sdk, upstreams):
    register(upstreams[0], priority=10)
    register(upstreams[1], priority=20)
    upstreams[0].mode = upstreams[1].mode = "500"
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert raised.value.status_code == 502
    body = raised.value.body
    assert body["type"] == "upstream_error"
    assert "up-0" in body["message"] and "up-1" in body["message"]
    decision = RoutingDecision.objects.get()
    assert [a["outcome"] for a in decision.attempts] == ["failed_over", "failed"]
    assert UsageReport.objects.get(decision_id=decision.pk).cost_usd == 0


def test_a_stream_cut_after_two_chunks_ends_with_an_error_event_and_no_failover(
    nexus_url, api_key, upstreams
):
    register(upstreams[0], priority=10)
    register(upstreams[1], priority=20)
    upstreams[0].mode = "cut"
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    with stream_post(nexus_url, api_key, body) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert len(events) == 3  # two chunks, then the error event
    assert '"upstream_error"' in events[-1]
    assert "[DONE]" not in "".join(events)
    assert upstreams[1].hits == []
    decision = RoutingDecision.objects.get()
    assert decision.attempts[0]["outcome"] == "interrupted"
    assert UsageReport.objects.get(decision_id=decision.pk).source == "estimated"


def test_the_sdk_raises_on_a_cut_stream_after_the_chunks_it_got(sdk, upstreams):
    register(upstreams[0], priority=10)
    upstreams[0].mode = "garbage"
    received = []
    with pytest.raises(openai.APIError):
        for chunk in sdk.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True
        ):
            received.append(chunk)
    assert len(received) == 2


def test_an_answer_without_usage_is_booked_as_an_estimate(sdk, upstreams):
    register(upstreams[0], priority=10, price="1")
    upstreams[0].mode = "no_usage"
    sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    wait_recorded()
    usage = UsageReport.objects.get()
    assert usage.source == "estimated"
    assert usage.input_tokens == math.ceil(len(MESSAGES[0]["content"]) / 4)
    assert usage.output_tokens > 0 and usage.cost_usd > 0


def test_restricted_requests_never_touch_a_non_private_upstream(sdk, upstreams):
    register(upstreams[0], priority=0, cloud=True)
    register(upstreams[1], priority=90)
    for _ in range(3):
        answer = sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            extra_body={"nexus": {"privacy": "restricted"}},
        )
        assert answer.choices[0].message.content.startswith("Hello from up-1")
    upstreams[1].mode = "500"
    with pytest.raises(openai.APIStatusError):
        sdk.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            extra_headers={"X-Nexus-Privacy": "restricted"},
        )
    assert upstreams[0].hits == []


def test_failures_open_the_circuit_and_a_trial_closes_it(sdk, upstreams, settings):
    # Priorities far apart, so that up-0 stays first as its error rate grows.
    register(upstreams[0], priority=0)
    register(upstreams[1], priority=100)
    upstreams[0].mode = "500"
    for _ in range(3):
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    backend = Backend.objects.get(name="up-0")
    assert backend.health == "unhealthy" and "circuit open" in backend.health_reason
    hits = len(upstreams[0].hits)
    sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert len(upstreams[0].hits) == hits  # open: not tried
    upstreams[0].mode = "ok"
    time.sleep(settings.NEXUS_PROXY_COOLDOWN_S + 0.6)
    answer = sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert answer.choices[0].message.content.startswith("Hello from up-0")
    wait_recorded()
    backend.refresh_from_db()
    assert backend.health == "healthy" and backend.health_reason == ""


def test_the_upstream_is_closed_within_a_second_of_a_client_disconnect(
    nexus_url, api_key, upstreams
):

    register(upstreams[0], priority=10)
    upstreams[0].chunks = 50
    upstreams[0].chunk_delay_s = 0.2
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    with stream_post(nexus_url, api_key, body) as response:
        next(response.iter_raw())
        left_at = time.monotonic()
    _wait_for(lambda: upstreams[0].disconnects, timeout=3)
    assert upstreams[0].disconnects[0] - left_at < 1.0
    _wait_for(lambda: RoutingDecision.objects.get().attempts)
    attempt = RoutingDecision.objects.get().attempts[0]
    assert attempt["outcome"] == "client_disconnected"
    _wait_for(lambda: in_flight_counts() == {})


def test_bad_keys_unknown_models_and_dry_runs_get_the_sdks_exceptions(
    nexus_url, sdk, upstreams
):
    register(upstreams[0], priority=10)
    stranger = openai.OpenAI(base_url=f"{nexus_url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model=MODEL, messages=MESSAGES)
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert missing.value.body["type"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as dry:
        sdk.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_body={"nexus": {"dry_run": True}}
        )
    assert "nexus.dry_run" in dry.value.body["fields"]
    with pytest.raises(openai.BadRequestError) as empty:
        sdk.chat.completions.create(model=MODEL, messages=[])
    assert "messages" in empty.value.body["fields"]
    assert upstreams[0].hits == []


def test_the_model_list_names_every_served_model_and_alias(sdk, upstreams):
    from tests.factories import AliasFactory

    register(upstreams[0], priority=10)
    AliasFactory(name="fast", target=MODEL)
    forget_configuration()
    ids = [m.id for m in sdk.models.list()]
    assert ids == sorted([MODEL, "fast"])


def test_wrong_methods_and_bodies_get_json_errors_never_html(
    nexus_url, api_key, upstreams
):
    import httpx

    register(upstreams[0], priority=10)
    auth = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=nexus_url, headers=auth, timeout=10) as client:
        wrong = client.get("/v1/chat/completions")
        assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
        assert wrong.json()["error"]["type"] == "method_not_allowed"
        assert client.post("/v1/models").json()["error"]["type"] == "method_not_allowed"
        broken = client.post(
            "/v1/chat/completions",
            content=b'{"model": "x", "messages": [',
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 400
        assert broken.json()["error"]["type"] == "invalid_request"
        listed = client.post("/v1/chat/completions", json=["not", "an", "object"])
        assert listed.status_code == 400 and listed.json()["error"]["fields"]
        streamy = client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "stream": "yes"},
        )
        assert (
            streamy.status_code == 400 and "stream" in streamy.json()["error"]["fields"]
        )
        missing = client.post("/v1/nothing-here")
        assert missing.status_code == 404 and "error" in missing.json()
    assert upstreams[0].hits == []


def test_a_stream_that_goes_quiet_past_the_idle_timeout_is_cut_honestly(
    nexus_url, api_key, upstreams, settings
):

    settings.NEXUS_PROXY_IDLE_TIMEOUT_S = 0.3
    register(upstreams[0], priority=10)
    upstreams[0].chunk_delay_s = 0.6  # slower than the idle timeout
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    with stream_post(nexus_url, api_key, body) as response:
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert "[DONE]" not in "".join(events)
    assert '"upstream_error"' in events[-1]
    attempt = RoutingDecision.objects.get().attempts[0]
    assert attempt["outcome"] == "interrupted" and "idle" in attempt["error"]
