"""Spend is now booked on every budget, with or without a limit: book the
usage already recorded this period on each budget that has not booked it
(e.g. ``global`` while it had no limit), then recount ``spent_usd`` from the
ledger. Every budget's scope is empty here (scopes arrive in 0011), so every
usage counts. Safe to run again: a usage already booked on a budget is skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import import_module

from django.db import migrations
from django.db.models import Exists, OuterRef, Sum

from routing.pipeline.periods import budget_period

BATCH = 2000


def backfill(apps, schema_editor):
    Budget = apps.get_model("routing", "Budget")
    LedgerEntry = apps.get_model("routing", "LedgerEntry")
    UsageReport = apps.get_model("routing", "UsageReport")
    today = datetime.now(UTC).date()
    for budget in Budget.objects.order_by("pk"):
        start, end = budget_period(today, budget.reset_day)
        if budget.period_start is not None:
            start, end = budget.period_start, budget.period_end
        booked = LedgerEntry.objects.filter(
            budget_id=budget.pk, decision_id=OuterRef("decision_id"), kind="spend"
        )
        missing = (
            UsageReport.objects.filter(
                created_at__gte=datetime.combine(start, datetime.min.time(), tzinfo=UTC)
            )
            .filter(~Exists(booked))
            .order_by("pk")
            .values_list("decision_id", "cost_usd", "created_at")
        )
        batch = []
        for decision_id, cost, recorded_at in missing.iterator(chunk_size=BATCH):
            batch.append(
                LedgerEntry(
                    budget_id=budget.pk,
                    kind="spend",
                    amount_usd=cost,
                    decision_id=decision_id,
                    period_start=start,
                    note="backfilled: spend is tracked on every budget",
                    created_at=recorded_at,
                )
            )
            if len(batch) == BATCH:
                LedgerEntry.objects.bulk_create(batch)
                batch = []
        LedgerEntry.objects.bulk_create(batch)
        spent = LedgerEntry.objects.filter(
            budget_id=budget.pk, kind="spend", period_start=start
        ).aggregate(total=Sum("amount_usd"))["total"]
        Budget.objects.filter(pk=budget.pk).update(
            spent_usd=spent or 0,
            period_start=start,
            period_end=end,
        )


def group_permissions(apps, schema_editor):
    """The ready groups get the new model's (``budgetalert``) permissions."""
    groups = import_module("routing.migrations.0007_operators_and_admins_groups")
    groups.create_groups(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("routing", "0011_budget_scope_and_alerts")]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(group_permissions, migrations.RunPython.noop),
    ]
