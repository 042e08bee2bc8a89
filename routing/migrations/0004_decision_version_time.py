# The explorer lists the decisions made under one config version, newest first.

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0003_ledger_constraint_and_state_version"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="routingdecision",
            index=models.Index(
                fields=["config_version", "-created_at"], name="decision_version_time"
            ),
        ),
    ]
