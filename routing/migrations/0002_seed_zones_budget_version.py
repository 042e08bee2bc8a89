"""Create the two standard privacy zones, the global budget and the version row."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import migrations

from routing.pipeline.periods import budget_period

ZONES = [
    ("local", True, "On-premises hardware; may receive restricted data."),
    ("cloud", False, "Third-party hosted APIs; never receives restricted data."),
]


def seed(apps, schema_editor):
    PrivacyZone = apps.get_model("routing", "PrivacyZone")
    Budget = apps.get_model("routing", "Budget")
    ConfigVersion = apps.get_model("routing", "ConfigVersion")
    for name, private, description in ZONES:
        PrivacyZone.objects.get_or_create(
            name=name, defaults={"private": private, "description": description}
        )
    start, end = budget_period(datetime.now(UTC).date(), 1)
    Budget.objects.get_or_create(
        name="global", defaults={"period_start": start, "period_end": end}
    )
    ConfigVersion.objects.get_or_create(pk=1, defaults={"version": 1})


def unseed(apps, schema_editor):
    apps.get_model("routing", "PrivacyZone").objects.filter(
        name__in=[name for name, _, _ in ZONES], backends__isnull=True
    ).delete()
    apps.get_model("routing", "Budget").objects.filter(
        name="global", ledger__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
