"""Prometheus metrics: decisions, exclusions, latencies, budget spend and status,
and what the proxy saw upstream (attempts, time to first byte, tokens, cost, load).

Counters and histograms are per process; with ``PROMETHEUS_MULTIPROC_DIR`` set
(``routing.metrics_dir``) ``/metrics`` sums every process's. Gauges are never
kept per process: they are read at scrape time from the database and the
shared state, which every process sees alike.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from routing.pipeline import RoutingResult

REGISTRY = CollectorRegistry()
LATENCY_BUCKETS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

DECISIONS = Counter(
    "nexus_decisions",
    "Recorded routing decisions by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
EXCLUSIONS = Counter(
    "nexus_exclusions",
    "Backends excluded, by reconciler.",
    ["reconciler"],
    registry=REGISTRY,
)
PIPELINE_SECONDS = Histogram(
    "nexus_pipeline_duration_seconds",
    "Time spent in the reconciler pipeline.",
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "nexus_route_request_duration_seconds",
    "Time to decide and record a route call (service layer).",
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
USAGE_USD = Counter(
    "nexus_usage_reported_usd",
    "Real cost reported through /api/v1/usage.",
    registry=REGISTRY,
)
ENQUEUE_FAILURES = Counter(
    "nexus_enqueue_failures",
    "Follow-up tasks that could not be sent to the broker after a commit "
    "(the periodic run catches up).",
    ["task"],
    registry=REGISTRY,
)


def enqueue_failed(task: str) -> None:
    ENQUEUE_FAILURES.labels(task).inc()


def decision_observed(result: RoutingResult, request_us: float) -> None:
    DECISIONS.labels(result.outcome.value).inc()
    for entry in result.trace:
        if entry.excluded:
            EXCLUSIONS.labels(entry.reconciler).inc(len(entry.excluded))
    PIPELINE_SECONDS.observe(result.duration_us / 1e6)
    REQUEST_SECONDS.observe(request_us / 1e6)


def usage_observed(cost_usd: float, *, created: bool) -> None:
    if created:
        USAGE_USD.inc(cost_usd)


#: Upstream waits are seconds to minutes, not the pipeline's microseconds.
UPSTREAM_BUCKETS_S = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
#: Attempt outcomes whose time to first byte is not an answer's (refused,
#: timed out, or a 5xx, 408 or 429 status).
_NO_ANSWER = frozenset({"failed_over", "failed"})

PROXY_REQUESTS = Counter(
    "nexus_proxy_requests",
    "Proxied upstream attempts, by backend and outcome.",
    ["backend", "outcome"],
    registry=REGISTRY,
)
PROXY_FAILOVERS = Counter(
    "nexus_proxy_failovers",
    "Upstream attempts that failed before the first byte and passed the request "
    "to the next backend.",
    ["backend"],
    registry=REGISTRY,
)
PROXY_TTFT_SECONDS = Histogram(
    "nexus_proxy_ttft_seconds",
    "Time to the first byte of upstream answers (failed attempts not counted).",
    ["backend"],
    buckets=UPSTREAM_BUCKETS_S,
    registry=REGISTRY,
)
PROXY_UPSTREAM_SECONDS = Histogram(
    "nexus_proxy_upstream_seconds",
    "Duration of each upstream attempt, from connecting to its end.",
    ["backend"],
    buckets=UPSTREAM_BUCKETS_S,
    registry=REGISTRY,
)
PROXY_REQUEST_ATTEMPTS = Histogram(
    "nexus_proxy_request_attempts",
    "Upstream attempts per proxied request, by result (served: a backend "
    "answered; unserved: none did); its count is the proxied requests.",
    ["result"],
    buckets=(1, 2, 3, 4, 5, 10),
    registry=REGISTRY,
)
PROXY_TOKENS = Counter(
    "nexus_proxy_tokens",
    "Tokens of proxied requests, by serving backend and direction (input, output).",
    ["backend", "direction"],
    registry=REGISTRY,
)
PROXY_COST_USD = Counter(
    "nexus_proxy_cost_usd",
    "Cost booked for proxied requests, by serving backend.",
    ["backend"],
    registry=REGISTRY,
)


def _seconds(milliseconds: object) -> float | None:
    if isinstance(milliseconds, int | float) and not isinstance(milliseconds, bool):
        return milliseconds / 1000
    return None


def proxy_observed(
    *,
    attempts: list[dict[str, object]],
    backend: str | None,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
) -> None:
    """Count one proxied request: each attempt (as recorded on the decision),
    the request and its number of attempts, then the tokens and booked cost on ``backend``, the one that served it
    (None: no backend did, nothing is counted for it)."""
    for attempt in attempts:
        name = str(attempt.get("backend") or "")
        outcome = str(attempt.get("outcome") or "")
        PROXY_REQUESTS.labels(name, outcome).inc()
        if outcome == "failed_over":
            PROXY_FAILOVERS.labels(name).inc()
        ttft = _seconds(attempt.get("ttft_ms"))
        if ttft is not None and outcome not in _NO_ANSWER:
            PROXY_TTFT_SECONDS.labels(name).observe(ttft)
        duration = _seconds(attempt.get("duration_ms"))
        if duration is not None:
            PROXY_UPSTREAM_SECONDS.labels(name).observe(duration)
    PROXY_REQUEST_ATTEMPTS.labels("served" if backend else "unserved").observe(
        len(attempts)
    )
    if backend:
        PROXY_TOKENS.labels(backend, "input").inc(max(input_tokens, 0))
        PROXY_TOKENS.labels(backend, "output").inc(max(output_tokens, 0))
        PROXY_COST_USD.labels(backend).inc(max(cost_usd, 0.0))


class ProxyInFlightCollector(Collector):
    """Proxied requests in flight per backend, read at scrape time from the
    shared state (every process's requests); 0 for every other backend."""

    def collect(self) -> Any:
        from routing.selectors import backend_list
        from routing.services.passive_health import in_flight_counts

        counts = in_flight_counts()
        names = set(backend_list().values_list("name", flat=True)) | set(counts)
        gauge = GaugeMetricFamily(
            "nexus_proxy_in_flight",
            "Proxied requests in flight to the backend now (all processes).",
            labels=["backend"],
        )
        for name in sorted(names):
            gauge.add_metric([name], float(counts.get(name, 0)))
        yield gauge


class BudgetCollector(Collector):
    """Reads budgets at scrape time, so every process reports the same truth."""

    def collect(self) -> Any:
        from routing.selectors import budget_list

        spent = GaugeMetricFamily(
            "nexus_budget_spent_usd", "Spent this period.", labels=["budget"]
        )
        reserved = GaugeMetricFamily(
            "nexus_budget_reserved_usd", "Open reservations.", labels=["budget"]
        )
        limit = GaugeMetricFamily(
            "nexus_budget_limit_usd", "Monthly limit.", labels=["budget"]
        )
        status = GaugeMetricFamily(
            "nexus_budget_status",
            "1 for the budget's current status.",
            labels=["budget", "status"],
        )
        for budget in budget_list():
            spent.add_metric([budget.name], float(budget.spent_usd))
            reserved.add_metric([budget.name], float(budget.reserved_usd))
            if budget.monthly_limit_usd is not None:
                limit.add_metric([budget.name], float(budget.monthly_limit_usd))
            for value in ("normal", "soft_limit", "hard_limit"):
                status.add_metric([budget.name, value], float(budget.status == value))
        yield from (spent, reserved, limit, status)


REGISTRY.register(BudgetCollector())
REGISTRY.register(ProxyInFlightCollector())


def multiprocess_mode() -> bool:
    """True when prometheus_client keeps values in ``PROMETHEUS_MULTIPROC_DIR``
    (decided by the library when first imported, see ``routing.metrics_dir``)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def scrape_registry() -> CollectorRegistry:
    """What ``/metrics`` reports: this process's ``REGISTRY`` in single-process
    mode; in multiprocess mode the counters and histograms of every process of
    the node (dead ones too, so totals never go backwards), summed from the
    directory's files, plus the gauges read at scrape time."""
    if not multiprocess_mode():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(BudgetCollector())
    registry.register(ProxyInFlightCollector())
    return registry


def _authorized(request: HttpRequest) -> bool:
    """No ``NEXUS_METRICS_TOKEN``: anyone; else ``Authorization: Bearer`` with
    the token (compared in constant time)."""
    token: str = settings.NEXUS_METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics`` in the Prometheus text format; 401 JSON without the token
    when one is configured, 503 JSON when a scrape-time gauge cannot be read
    (database unreachable)."""
    from routing.api.exceptions import error_body, outage_response
    from routing.request_log import OUTAGE_ERRORS

    if not _authorized(request):
        response = JsonResponse(
            error_body(
                "unauthorized",
                "/metrics needs the header Authorization: Bearer <NEXUS_METRICS_TOKEN>.",
            ),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    try:
        text = generate_latest(scrape_registry())
    except OUTAGE_ERRORS as exc:
        return outage_response(request, exc)
    return HttpResponse(text, content_type=CONTENT_TYPE_LATEST)


SHARED_STATE_UNAVAILABLE = Counter(
    "nexus_shared_state_unavailable",
    "Shared-state operations that failed and failed open (rate limits not applied).",
    ["store"],
    registry=REGISTRY,
)
