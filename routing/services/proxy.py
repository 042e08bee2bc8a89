"""Recording what the proxy did after its decision: attempts, usage, the loop.

The decision itself is recorded (and its estimate reserved) before the first
byte goes upstream, exactly as for ``POST /api/v1/route``. When the proxied
request ends, ``proxy_outcome_record`` adds the attempts, sets the backend that
served the answer, and books the usage with the ledger effects of
``POST /api/v1/usage`` (a request that no backend answered books nothing and
releases its reservation). Each attempt also feeds passive health.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass

from django.db import transaction

from routing.metrics import proxy_observed
from routing.models import RoutingDecision
from routing.proxy.upstream import Usage
from routing.services.ledger import decision_update_for_usage, usage_record
from routing.services.passive_health import backend_attempt_observe, routed_release

logger = logging.getLogger(__name__)

#: Attempt outcomes (the contract's names).
OK = "ok"
FAILED_OVER = "failed_over"
INTERRUPTED = "interrupted"
CLIENT_DISCONNECTED = "client_disconnected"
CLIENT_ERROR = "client_error"
FAILED = "failed"


@dataclass
class Attempt:
    """One try at one upstream, as recorded on the decision."""

    backend: str
    outcome: str = FAILED
    status: int | None = None
    error: str = ""
    duration_ms: float = 0.0
    ttft_ms: float | None = None
    #: A 429's Retry-After in seconds (not recorded; feeds the cool-down).
    retry_after_s: float | None = None
    #: Its in-flight lease while counted, else "" (not recorded).
    in_flight: str = ""

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("retry_after_s")
        data.pop("in_flight")
        data["duration_ms"] = round(self.duration_ms, 3)
        if self.ttft_ms is not None:
            data["ttft_ms"] = round(self.ttft_ms, 3)
        return data

    @property
    def upstream_failed(self) -> bool:
        """Counts against the backend's health (the client's doing does not)."""
        return self.outcome in {FAILED_OVER, FAILED, INTERRUPTED}


def proxy_outcome_record(
    *,
    decision_id: uuid.UUID,
    attempts: list[Attempt],
    served: str | None,
    usage: Usage | None,
    latency_ms: float | None = None,
) -> None:
    """Record a proxied request's attempts and usage; feed passive health."""
    with transaction.atomic():
        changes: dict[str, object] = {"attempts": [a.to_dict() for a in attempts]}
        if served:
            changes["backend_name"] = served
        decision = decision_update_for_usage(decision_id=decision_id, changes=changes)
        last = attempts[-1] if attempts else None
        booked = usage_record(
            decision_id=decision_id,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            reporter=None,
            source=usage.source if usage else "estimated",
            latency_ms=latency_ms,
            ttft_ms=last.ttft_ms if last else None,
            outcome=last.outcome if last else FAILED,
            savepoint=False,
            decision=decision,
        )
    for attempt in attempts:
        if attempt.outcome in {CLIENT_DISCONNECTED} and attempt.ttft_ms is None:
            continue  # the client left before the upstream said anything
        backend_attempt_observe(
            backend_name=attempt.backend,
            ok=not attempt.upstream_failed,
            ttft_ms=attempt.ttft_ms,
            retry_after_s=attempt.retry_after_s,
        )
    proxy_observed(
        attempts=[a.to_dict() for a in attempts],
        backend=served,
        input_tokens=booked.report.input_tokens,
        output_tokens=booked.report.output_tokens,
        cost_usd=float(booked.report.cost_usd),
    )


#: Outcomes a client may report with its usage (``POST /api/v1/usage``).
REPORTED_OUTCOMES = ("ok", "error", "timeout", "interrupted")


def reported_usage_observe(
    *, decision_id: uuid.UUID, outcome: str | None, ttft_ms: float | None
) -> None:
    """A client's own usage report (``/api/v1/usage``): its decision is no
    longer in flight, and its outcome and TTFT (when given) feed passive health."""
    backend = (
        RoutingDecision.objects.filter(pk=decision_id)
        .values_list("backend_name", flat=True)
        .first()
    )
    if not backend:
        return
    routed_release(backend=backend, decision_id=str(decision_id))
    if outcome is not None or ttft_ms:
        backend_attempt_observe(
            backend_name=backend, ok=(outcome or "ok") == "ok", ttft_ms=ttft_ms
        )
