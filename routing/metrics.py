"""Prometheus metrics: decisions, exclusions, latencies, budget spend and status."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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


def decision_observed(payload: dict[str, Any], request_us: float) -> None:
    DECISIONS.labels(payload["outcome"]).inc()
    for entry in payload.get("trace", []):
        if entry.get("excluded"):
            EXCLUSIONS.labels(entry["reconciler"]).inc(len(entry["excluded"]))
    PIPELINE_SECONDS.observe(payload.get("pipeline_duration_us", 0.0) / 1e6)
    REQUEST_SECONDS.observe(request_us / 1e6)


def usage_observed(cost_usd: float, *, created: bool) -> None:
    if created:
        USAGE_USD.inc(cost_usd)


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


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics`` in the Prometheus text format."""
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


SHARED_STATE_UNAVAILABLE = Counter(
    "nexus_shared_state_unavailable",
    "Shared-state operations that failed and failed open (rate limits not applied).",
    ["store"],
    registry=REGISTRY,
)
