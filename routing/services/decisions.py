"""Recording a routing decision: one row plus one row per excluding reconciler."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models.sql import InsertQuery

from routing.models import DecisionExclusion, RoutingDecision

COLUMNS = {
    "outcome",
    "requested_model",
    "model",
    "score",
    "reason",
    "estimated_cost_usd",
    "fallback_used",
    "pipeline_duration_us",
    "requirements",
    "constraints",
    "annotations",
    "trace",
    "warnings",
}


def _exclusion_counts(trace: list[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for entry in trace:
        if entry.get("excluded"):
            counts[entry["reconciler"]] += len(entry["excluded"])
    return counts


def decision_record(
    *,
    decision_id: uuid.UUID,
    payload: dict[str, Any],
    request_id: str,
    client: str,
    config_version: int,
    created_at: datetime,
) -> RoutingDecision:
    """Store ``payload`` (a ``RoutingResult.to_dict()``, never prompt text).

    One INSERT when no backend was excluded; otherwise the decision and its
    exclusion rows are written atomically.
    """
    error = payload.get("error") or {}
    backend = payload.get("backend") or {}
    cost = payload.get("estimated_cost_usd")
    decision = RoutingDecision(
        id=decision_id,
        request_id=request_id,
        created_at=created_at,
        outcome=payload["outcome"],
        error_type=error.get("type") or "",
        requested_model=payload["requested_model"][:200],
        model=payload["model"][:200],
        backend_name=backend.get("name", ""),
        score=payload.get("score"),
        estimated_cost_usd=Decimal(str(cost)) if cost is not None else None,
        reason=payload.get("reason") or "",
        fallback_used=payload.get("fallback_used", False),
        pipeline_duration_us=payload.get("pipeline_duration_us", 0.0),
        client=client,
        config_version=config_version,
        requirements=payload.get("requirements", {}),
        constraints=payload.get("constraints", {}),
        annotations=payload.get("annotations", {}),
        trace=payload.get("trace", []),
        warnings=payload.get("warnings", []),
        details={k: v for k, v in payload.items() if k not in COLUMNS},
    )
    counts = _exclusion_counts(payload.get("trace", []))
    if not counts:
        decision.save(force_insert=True)
        return decision
    exclusions = [
        DecisionExclusion(
            decision=decision,
            reconciler=reconciler,
            excluded_count=count,
            created_at=created_at,
        )
        for reconciler, count in counts.items()
    ]
    if connection.vendor == "postgresql":
        _insert_together(decision, exclusions)
        return decision
    with transaction.atomic(savepoint=False):
        decision.save(force_insert=True)
        DecisionExclusion.objects.bulk_create(exclusions)
    return decision


def _insert_together(
    decision: RoutingDecision, exclusions: list[DecisionExclusion]
) -> None:
    """Both INSERTs in one statement (a data-modifying CTE): one round trip.

    PostgreSQL runs every sub-statement of a WITH exactly once, and Django's
    foreign keys there are deferred to commit, so the exclusion rows may name
    the decision inserted beside them.
    """
    fields = [f for f in RoutingDecision._meta.local_concrete_fields]
    query = InsertQuery(RoutingDecision)
    query.insert_values(fields, [decision])
    [(insert_sql, params)] = query.get_compiler(connection=connection).as_sql()
    quote = connection.ops.quote_name
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(exclusions))
    sql = (
        f"WITH decision AS ({insert_sql}) "
        f"INSERT INTO {quote(DecisionExclusion._meta.db_table)} "
        "(decision_id, reconciler, excluded_count, created_at) VALUES " + rows
    )
    values = [
        value
        for e in exclusions
        for value in (decision.pk, e.reconciler, e.excluded_count, e.created_at)
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *values])
