"""Client-supplied timestamps, made safe to compare with stored ones.

Python accepts UTC offsets up to ±23:59 and years 1–9999 in any offset;
PostgreSQL stores offsets only up to ±15:59. A timestamp from a query string
is therefore normalised to UTC before it reaches a query, and one that has no
UTC equivalent (year 1 at +05:00, say) counts as not a timestamp at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime


def as_utc(value: datetime) -> datetime | None:
    """``value`` in UTC (naive means UTC), or None when UTC cannot hold it."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


def parse_utc(raw: str) -> datetime | None:
    """An ISO 8601 timestamp in UTC, or None when it is not a usable one."""
    try:
        parsed = parse_datetime(raw)
    except ValueError:  # well-formed but not a real date, e.g. February 30
        return None
    return None if parsed is None else as_utc(parsed)
