"""The daily spend rollup (``SpendDaily``) and the usage reports' ``rolled_up`` mark.

Existing reports start un-rolled: the rollup task adds them batch by batch, and
the spend report reads them raw until it has.
"""

from importlib import import_module

from django.db import migrations, models


def group_permissions(apps, schema_editor):
    """The ready groups get the new model's (``spenddaily``) permissions."""
    groups = import_module("routing.migrations.0007_operators_and_admins_groups")
    groups.create_groups(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('routing', '0012_backfill_budget_spend'),
    ]

    operations = [
        migrations.CreateModel(
            name='SpendDaily',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('client', models.CharField(blank=True, max_length=160)),
                ('model', models.CharField(blank=True, max_length=200)),
                ('backend', models.CharField(blank=True, max_length=64)),
                ('zone', models.CharField(blank=True, max_length=64)),
                ('cost_usd', models.DecimalField(decimal_places=6, default=0, max_digits=20)),
                ('requests', models.BigIntegerField(default=0)),
                ('input_tokens', models.BigIntegerField(default=0)),
                ('output_tokens', models.BigIntegerField(default=0)),
                ('estimated_cost_usd', models.DecimalField(decimal_places=6, default=0, max_digits=20)),
            ],
            options={
                'verbose_name_plural': 'spend per day',
                'ordering': ['day', 'client', 'model', 'backend', 'zone'],
            },
        ),
        migrations.AddField(
            model_name='usagereport',
            name='rolled_up',
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddIndex(
            model_name='usagereport',
            index=models.Index(fields=['created_at'], name='usage_created_at'),
        ),
        migrations.AddIndex(
            model_name='usagereport',
            index=models.Index(condition=models.Q(('rolled_up', False)), fields=['id'], name='usage_not_rolled_up'),
        ),
        migrations.AddConstraint(
            model_name='spenddaily',
            constraint=models.UniqueConstraint(fields=('day', 'client', 'model', 'backend', 'zone'), name='spend_daily_one_row_per_group'),
        ),
        migrations.RunPython(group_permissions, migrations.RunPython.noop),
    ]
