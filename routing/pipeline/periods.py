"""Budget period arithmetic: a period starts on ``reset_day`` and ends at the next one."""

from __future__ import annotations

from datetime import date


def _shift_month(day: date, months: int, reset_day: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, reset_day)


def budget_period(today: date, reset_day: int) -> tuple[date, date]:
    """The period containing ``today``: (first day, reset date that ends it, exclusive)."""
    if not 1 <= reset_day <= 28:
        raise ValueError(f"reset_day must be between 1 and 28; got {reset_day}.")
    start = date(today.year, today.month, reset_day)
    if today < start:
        start = _shift_month(start, -1, reset_day)
    return start, _shift_month(start, 1, reset_day)
