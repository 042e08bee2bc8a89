"""In-flight counts under concurrency, and usage reports that feed the same loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest

from routing.models import Backend, RoutingDecision, UsageReport
from routing.services.passive_health import in_flight_counts
from tests.conftest import require_service
from tests.proxy.conftest import MODEL, register

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

MESSAGES = [{"role": "user", "content": "count me"}]


def test_in_flight_counts_return_to_zero_after_64_concurrent_streams(
    postgres, nexus_url, api_key, upstreams
):
    """Streams that finish, fail before the first byte, are cut, or whose
    client leaves early: every count goes back to 0, and the counts were up
    while the streams were in flight. Each upstream serves a model of its own,
    so the mix is fixed: model-ok answers, model-cut cuts after two chunks,
    model-500 fails before the first byte; every 4th client leaves early.
    (PostgreSQL: 64 requests write at once, which the test's in-memory SQLite
    cannot take.)"""
    models = ("model-ok", "model-cut", "model-500")
    for upstream, model, mode in zip(
        upstreams, models, ("ok", "cut", "500"), strict=True
    ):
        register(upstream, priority=10, model=model)
        upstream.chunks = 8
        upstream.chunk_delay_s = 0.05
        upstream.mode = mode
    seen_in_flight: list[int] = []
    reasons: dict[int, str] = {}

    async def one(client: httpx.AsyncClient, n: int) -> str:
        model = models[n % 3]
        body: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": True}
        async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            if reply.status_code != 200:
                error = orjson.loads(await reply.aread())["error"]
                reasons[n] = error["message"]
                return f"http {reply.status_code}"
            if n % 4 == 3:  # this client leaves after the first chunk
                async for _ in reply.aiter_raw():
                    break
                return "left"
            text = "".join([line async for line in reply.aiter_lines()])
            return "done" if "[DONE]" in text else "cut"

    async def watch() -> None:
        for _ in range(20):
            seen_in_flight.append(sum(in_flight_counts().values()))
            await asyncio.sleep(0.05)

    async def main() -> list[str]:
        async with httpx.AsyncClient(
            base_url=nexus_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
            limits=httpx.Limits(max_connections=64),
        ) as client:
            watcher = asyncio.create_task(watch())
            results = await asyncio.gather(*(one(client, n) for n in range(64)))
            await watcher
            return results

    results = asyncio.run(main())
    # Cuts and failures open their backend's circuit after 3 in a row: later
    # requests for model-cut and model-500 may be rejected (503) instead.
    for n, result in enumerate(results):
        model_result = ("done", "cut", "http 502")[n % 3]
        expected = {"left" if n % 4 == 3 and n % 3 != 2 else model_result}
        if n % 3:
            expected.add("http 503")
        assert result in expected, (n, result, reasons.get(n))
    assert {"done", "cut", "left", "http 502"} <= set(results)
    deadline = time.monotonic() + 10
    routed = RoutingDecision.objects.filter(outcome="route")
    while in_flight_counts() or UsageReport.objects.count() < routed.count():
        booked = set(UsageReport.objects.values_list("decision_id", flat=True))
        assert time.monotonic() < deadline, (
            in_flight_counts(),
            [(d.backend_name, d.attempts) for d in routed.exclude(pk__in=booked)],
        )
        time.sleep(0.05)
    assert max(seen_in_flight) > 1
    assert RoutingDecision.objects.count() == 64
    routed = RoutingDecision.objects.filter(outcome="route").count()
    assert UsageReport.objects.count() == routed == 64 - results.count("http 503")


def test_a_reported_usage_with_timings_feeds_latency_and_passive_health(
    api_client, settings
):
    from tests.fleet_rows import make_fleet

    make_fleet()
    routed = api_client.post(
        "/api/v1/route",
        {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]},
        format="json",
    ).json()
    backend = routed["backend"]["name"]
    reply = api_client.post(
        "/api/v1/usage",
        {
            "decision_id": routed["decision_id"],
            "input_tokens": 10,
            "output_tokens": 5,
            "latency_ms": 900,
            "ttft_ms": 120,
            "outcome": "error",
        },
        format="json",
    )
    assert reply.status_code == 201, reply.json()
    report = UsageReport.objects.get()
    assert (report.source, report.latency_ms, report.ttft_ms, report.outcome) == (
        "reported",
        900,
        120,
        "error",
    )
    row = Backend.objects.get(name=backend)
    assert row.consecutive_failures == 1 and row.error_rate > 0


def test_a_reported_outcome_outside_the_list_is_refused_naming_the_field(
    api_client,
):
    reply = api_client.post(
        "/api/v1/usage",
        {
            "decision_id": "00000000-0000-0000-0000-000000000000",
            "input_tokens": 1,
            "output_tokens": 1,
            "outcome": "meh",
            "ttft_ms": -1,
        },
        format="json",
    )
    assert reply.status_code == 400
    assert set(reply.json()["error"]["fields"]) == {"outcome", "ttft_ms"}


def test_in_flight_counts_live_in_redis_when_it_is_configured(
    postgres, nexus_url, api_key, upstreams, settings
):
    from routing.shared_state import RedisState
    from tests.test_shared_state import _redis_url

    url = _redis_url()
    require_service(
        bool(url), "needs Redis: set NEXUS_TEST_REDIS_URL or CELERY_BROKER_URL=redis://"
    )
    settings.NEXUS_REDIS_URL = url
    redis = RedisState(url)
    register(upstreams[0], priority=10)
    upstreams[0].chunks = 10
    upstreams[0].chunk_delay_s = 0.05
    peak = 0

    async def main() -> None:
        nonlocal peak
        async with httpx.AsyncClient(
            base_url=nexus_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        ) as client:
            body = {"model": MODEL, "messages": MESSAGES, "stream": True}

            async def one() -> None:
                async with client.stream(
                    "POST", "/v1/chat/completions", json=body
                ) as reply:
                    async for _ in reply.aiter_raw():
                        pass

            tasks = [asyncio.create_task(one()) for _ in range(8)]
            while not all(t.done() for t in tasks):
                peak = max(peak, redis.leases("inflight:").get("up-0", 0))
                await asyncio.sleep(0.02)
            await asyncio.gather(*tasks)

    asyncio.run(main())
    assert peak >= 2
    deadline = time.monotonic() + 5
    while redis.leases("inflight:").get("up-0", 0):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_decision_routed_through_the_api_is_in_flight_until_its_usage_arrives(
    api_client, settings
):
    from tests.fleet_rows import make_fleet

    make_fleet()
    body = {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]}
    first = api_client.post("/api/v1/route", body, format="json").json()
    second = api_client.post("/api/v1/route", body, format="json").json()
    backend = first["backend"]["name"]
    assert second["backend"]["name"] == backend
    assert in_flight_counts() == {backend: 2}
    # The load scorer saw the first call in flight when it scored the second.
    assert (
        second["annotations"]["score_breakdown"][backend]["load"]
        < first["annotations"]["score_breakdown"][backend]["load"]
    )
    report = {
        "decision_id": first["decision_id"],
        "input_tokens": 3,
        "output_tokens": 4,
    }
    assert api_client.post("/api/v1/usage", report, format="json").status_code == 201
    assert in_flight_counts() == {backend: 1}


def test_a_routed_decision_stops_counting_when_its_reservation_would_expire(
    api_client, settings
):
    from tests.fleet_rows import make_fleet

    settings.NEXUS_RESERVATION_TTL_SECONDS = 1
    make_fleet()
    body = {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]}
    api_client.post("/api/v1/route", body, format="json")
    assert sum(in_flight_counts().values()) == 1
    time.sleep(1.1)
    assert in_flight_counts() == {}


def test_the_backends_api_shows_the_live_in_flight_count_as_pending_requests(
    api_client,
):
    from tests.fleet_rows import make_fleet

    make_fleet()
    body = {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]}
    backend = api_client.post("/api/v1/route", body, format="json").json()["backend"]
    listed = api_client.get("/api/v1/backends/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    pending = {row["name"]: row["pending_requests"] for row in rows}
    assert pending[backend["name"]] == 1
    assert sum(pending.values()) == 1
