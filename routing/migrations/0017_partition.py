"""PostgreSQL: decisions and their exclusion rows become range-partitioned by created_at.

Each table is rebuilt without naming its columns (so a column added by an earlier
migration comes along): a new table ``LIKE`` the old one, ``PARTITION BY RANGE
(created_at)``, one partition per period (``NEXUS_DECISION_PARTITION_PERIOD``)
from the oldest row still within retention to two periods ahead, and a DEFAULT
partition for every other row; rows are copied with one ``INSERT ... SELECT``,
the old table is dropped, the new one renamed, then the primary key
(id, created_at), the unique constraints (with created_at added) and the other
indexes are created again under their old names, on the parent (so every
partition gets them), and the table is analyzed. The table is locked meanwhile; see docs/operations.md
for the time it takes per million rows. SQLite keeps plain tables: no-op there.

Self-contained on purpose (a migration must not change when app code does);
routing/services/partitions.py names partitions the same way.
"""

from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion

TABLES = ("routing_routingdecision", "routing_decisionexclusion")
KEY = "created_at"
AHEAD = 2


def _period_start(period, at):
    day = at.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next(period, start):
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def _periods(cursor, table):
    """The periods to create for ``table``'s rows (within retention) and ahead."""
    period = getattr(settings, "NEXUS_DECISION_PARTITION_PERIOD", "month")
    now = datetime.now(timezone.utc)
    cutoff = now - timedelta(days=settings.NEXUS_DECISION_RETENTION_DAYS)
    cursor.execute(f'SELECT min("{KEY}") FROM "{table}" WHERE "{KEY}" >= %s', [cutoff])
    oldest = cursor.fetchone()[0] or now
    start = _period_start(period, min(oldest, now))
    last = _period_start(period, now)
    for _ in range(AHEAD):
        last = _next(period, last)
    periods = []
    while start <= last:
        periods.append((start, _next(period, start)))
        start = _next(period, start)
    return periods


def _rebuild(schema_editor, table, partitioned):
    """Rebuild ``table`` partitioned (or plain again), keeping rows, names, indexes."""
    cursor = schema_editor.connection.cursor()
    cursor.execute(
        "SELECT c.conname, c.contype, array_agg(a.attname ORDER BY k.ord) "
        "FROM pg_constraint c "
        "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'u') "
        "GROUP BY c.conname, c.contype",
        [table],
    )
    keys = cursor.fetchall()
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid "
        "AND c.conrelid = i.indrelid)",
        [table],
    )
    indexes = [row[0] for row in cursor.fetchall()]
    if partitioned and any(d.startswith("CREATE UNIQUE") for d in indexes):
        raise RuntimeError(f"{table}: a unique index without created_at cannot be partitioned")
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attidentity <> '' AND NOT attisdropped",
        [table],
    )
    identity = [row[0] for row in cursor.fetchall()]

    new = f"{table}__new"
    cursor.execute(
        f'CREATE TABLE "{new}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
        f"INCLUDING IDENTITY)"
        + (f' PARTITION BY RANGE ("{KEY}")' if partitioned else "")
    )
    if partitioned:
        for start, end in _periods(cursor, table):
            cursor.execute(
                f'CREATE TABLE "{table}_p{start:%Y%m%d}" PARTITION OF "{new}" '
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        cursor.execute(f'CREATE TABLE "{table}_default" PARTITION OF "{new}" DEFAULT')
    cursor.execute(f'INSERT INTO "{new}" SELECT * FROM "{table}"')
    cursor.execute(f'DROP TABLE "{table}" CASCADE')
    cursor.execute(f'ALTER TABLE "{new}" RENAME TO "{table}"')
    for column in identity:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, %s), "
            f'coalesce(max("{column}"), 0) + 1, false) FROM "{table}"',
            [table, column],
        )
    for name, kind, columns in keys:
        # Partitioned: every unique key must include created_at (an exclusion has
        # its decision's created_at, so (decision, reconciler, created_at) is as
        # unique as (decision, reconciler)). Plain again: the keys Django made.
        columns = [c for c in columns if c != KEY]
        if partitioned:
            columns.append(KEY)
        quoted = ", ".join(f'"{c}"' for c in columns)
        constraint = "PRIMARY KEY" if kind == "p" else "UNIQUE"
        cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {constraint} ({quoted})')
    for definition in indexes:
        cursor.execute(definition)
    # A new table has no statistics, and autovacuum never analyzes a partitioned
    # parent: without this the planner guesses (seconds per explorer page).
    cursor.execute(f'ANALYZE "{table}"')


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        _rebuild(schema_editor, table, partitioned=True)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        _rebuild(schema_editor, table, partitioned=False)


class Migration(migrations.Migration):

    dependencies = [
        ("routing", "0016_decision_sample"),
    ]

    operations = [
        migrations.AlterField(
            model_name="decisionexclusion",
            name="decision",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="exclusions",
                to="routing.routingdecision",
            ),
        ),
        migrations.RunPython(partition, unpartition),
    ]
