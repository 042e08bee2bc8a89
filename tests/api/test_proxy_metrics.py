"""/metrics counts what the proxy saw upstream: attempts, failovers, time to first
byte, attempt time, tokens, booked cost, and requests in flight at scrape time."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from routing.metrics import proxy_observed
from routing.models import UsageReport
from routing.proxy.upstream import Usage
from routing.services.passive_health import in_flight_end, in_flight_start
from routing.services.proxy import Attempt, proxy_outcome_record
from tests.fleet_rows import chat

pytestmark = pytest.mark.django_db


def scrape() -> str:
    response = Client().get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def value(text: str, series: str) -> float:
    """The sample of exactly ``series`` (name and labels), 0 when absent."""
    for line in text.splitlines():
        name, _, sample = line.rpartition(" ")
        if name == series:
            return float(sample)
    return 0.0


def delta(before: str, after: str, series: str) -> float:
    return value(after, series) - value(before, series)


def attempt(backend: str, outcome: str, **fields: object) -> dict[str, object]:
    return {
        "backend": backend,
        "outcome": outcome,
        "status": fields.get("status"),
        "error": fields.get("error", ""),
        "duration_ms": fields.get("duration_ms", 0.0),
        "ttft_ms": fields.get("ttft_ms"),
    }


def unique(prefix: str) -> str:
    """A backend name no other test counts for (counters live per process)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_each_attempt_is_counted_by_backend_and_outcome_and_failovers_apart() -> None:
    first, second = unique("flaky"), unique("steady")
    before = scrape()
    proxy_observed(
        attempts=[
            attempt(first, "failed_over", status=503, duration_ms=20.0, ttft_ms=15.0),
            attempt(second, "ok", status=200, duration_ms=900.0, ttft_ms=120.0),
        ],
        backend=second,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
    )
    after = scrape()
    requests = 'nexus_proxy_requests_total{{backend="{}",outcome="{}"}}'
    assert delta(before, after, requests.format(first, "failed_over")) == 1
    assert delta(before, after, requests.format(second, "ok")) == 1
    assert delta(before, after, requests.format(first, "ok")) == 0
    assert (
        delta(before, after, f'nexus_proxy_failovers_total{{backend="{first}"}}') == 1
    )
    assert (
        delta(before, after, f'nexus_proxy_failovers_total{{backend="{second}"}}') == 0
    )


def test_time_to_first_byte_counts_answers_and_upstream_time_counts_every_attempt() -> (
    None
):
    failing, serving = unique("failing"), unique("serving")
    before = scrape()
    proxy_observed(
        attempts=[
            attempt(failing, "failed_over", status=503, duration_ms=20.0, ttft_ms=15.0),
            attempt(serving, "ok", status=200, duration_ms=900.0, ttft_ms=120.0),
        ],
        backend=serving,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
    )
    after = scrape()
    ttft = 'nexus_proxy_ttft_seconds_{}{{backend="{}"}}'
    assert delta(before, after, ttft.format("count", serving)) == 1
    assert delta(before, after, ttft.format("sum", serving)) == pytest.approx(0.12)
    assert delta(before, after, ttft.format("count", failing)) == 0
    bucket = 'nexus_proxy_ttft_seconds_bucket{{backend="{}",le="{}"}}'
    assert delta(before, after, bucket.format(serving, "0.1")) == 0
    assert delta(before, after, bucket.format(serving, "0.25")) == 1
    upstream = 'nexus_proxy_upstream_seconds_{}{{backend="{}"}}'
    assert delta(before, after, upstream.format("count", failing)) == 1
    assert delta(before, after, upstream.format("sum", serving)) == pytest.approx(0.9)


def test_tokens_and_cost_are_counted_on_the_serving_backend_only() -> None:
    failing, serving = unique("failing"), unique("serving")
    before = scrape()
    proxy_observed(
        attempts=[
            attempt(failing, "failed_over", status=502),
            attempt(serving, "ok", status=200, ttft_ms=50.0),
        ],
        backend=serving,
        input_tokens=1200,
        output_tokens=340,
        cost_usd=0.0125,
    )
    after = scrape()
    tokens = 'nexus_proxy_tokens_total{{backend="{}",direction="{}"}}'
    assert delta(before, after, tokens.format(serving, "input")) == 1200
    assert delta(before, after, tokens.format(serving, "output")) == 340
    assert delta(before, after, tokens.format(failing, "input")) == 0
    cost = 'nexus_proxy_cost_usd_total{{backend="{}"}}'
    assert delta(before, after, cost.format(serving)) == pytest.approx(0.0125)


def test_a_request_no_backend_served_counts_attempts_but_no_tokens() -> None:
    name = unique("down")
    before = scrape()
    proxy_observed(
        attempts=[attempt(name, "failed", error="ConnectError")],
        backend=None,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
    )
    after = scrape()
    series = f'nexus_proxy_requests_total{{backend="{name}",outcome="failed"}}'
    assert delta(before, after, series) == 1
    assert f'nexus_proxy_tokens_total{{backend="{name}"' not in after


def test_requests_in_flight_are_read_when_scraped(fleet: Any) -> None:
    for token in ("t1", "t2"):
        in_flight_start("cloud-gpt", token)
    text = scrape()
    assert value(text, 'nexus_proxy_in_flight{backend="cloud-gpt"}') == 2
    assert 'nexus_proxy_in_flight{backend="local-gpu"} 0.0' in text
    for token in ("t1", "t2"):
        in_flight_end("cloud-gpt", token)
    assert value(scrape(), 'nexus_proxy_in_flight{backend="cloud-gpt"}') == 0


def test_recording_a_proxied_request_feeds_the_metrics_with_the_booked_cost(
    api_client: APIClient, fleet: Any
) -> None:
    routed = api_client.post("/api/v1/route", chat("gpt-4o"), format="json").json()
    assert routed["backend"]["name"] == "cloud-gpt"
    decision_id = uuid.UUID(routed["decision_id"])
    before = scrape()
    proxy_outcome_record(
        decision_id=decision_id,
        attempts=[Attempt("cloud-gpt", outcome="ok", status=200, ttft_ms=80.0)],
        served="cloud-gpt",
        usage=Usage(input_tokens=1000, output_tokens=500, source="upstream"),
        latency_ms=400.0,
    )
    after = scrape()
    booked = float(UsageReport.objects.get(decision_id=decision_id).cost_usd)
    assert booked == pytest.approx(0.0075)  # 1k in at $0.0025, 0.5k out at $0.01
    cost = 'nexus_proxy_cost_usd_total{backend="cloud-gpt"}'
    assert delta(before, after, cost) == pytest.approx(booked)
    tokens = 'nexus_proxy_tokens_total{backend="cloud-gpt",direction="output"}'
    assert delta(before, after, tokens) == 500
    series = 'nexus_proxy_requests_total{backend="cloud-gpt",outcome="ok"}'
    assert delta(before, after, series) == 1


def test_each_request_is_counted_once_with_its_number_of_attempts() -> None:
    flaky, steady, dead = unique("flaky"), unique("steady"), unique("dead")
    attempts = 'nexus_proxy_request_attempts_{}{{result="{}"}}'
    le = 'nexus_proxy_request_attempts_bucket{{le="{}",result="{}"}}'
    before = scrape()
    proxy_observed(
        attempts=[
            attempt(flaky, "failed_over", status=503, duration_ms=20.0),
            attempt(steady, "ok", status=200, duration_ms=900.0, ttft_ms=120.0),
        ],
        backend=steady,
        input_tokens=1,
        output_tokens=1,
        cost_usd=0.0,
    )
    proxy_observed(
        attempts=[attempt(dead, "failed", error="ConnectError")],
        backend=None,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
    )
    after = scrape()
    assert delta(before, after, attempts.format("count", "served")) == 1
    assert delta(before, after, attempts.format("sum", "served")) == 2
    assert delta(before, after, le.format("1.0", "served")) == 0
    assert delta(before, after, le.format("2.0", "served")) == 1
    assert delta(before, after, attempts.format("count", "unserved")) == 1
    assert delta(before, after, attempts.format("sum", "unserved")) == 1
