"""How the explorer and the admin write numbers: money, scores, latencies, rates.

One rule each, used by every template (through ``routing.templatetags.numbers``),
the charts and the admin's list columns:

- **Money** (:func:`money`), in US dollars:

  - ``$1`` and above: two decimals with thousands separators: ``$12.40``,
    ``$1,234.50``.
  - below ``$1``: two significant digits, with at least two decimals and
    trailing zeros beyond the second decimal dropped: ``$0.50``, ``$0.05``,
    ``$0.0026``, ``$0.0000004``. A non-zero amount is therefore never shown
    as ``$0`` or ``$0.000000``.
  - zero is ``$0.00``; a negative amount puts the sign first: ``-$0.0026``.

- **Scores, latencies and other measurements** (:func:`number`): three
  significant digits, trailing zeros dropped (``0.823``, ``12.3``, ``0.5``),
  but never fewer digits than the integer part (``1,235``, with separators).
- **Durations** (:func:`duration_us`): microseconds below a millisecond
  (``4.56 µs``), milliseconds above (``1.23 ms``).
- **Rates** (:func:`percent`): a fraction as a percentage by the same rule
  (``0.0123`` -> ``1.23%``).

``None`` (or an empty string) is ``—`` everywhere; a value that is not a number
is shown as it is.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

MISSING = "—"
#: Wide enough that rounding a huge amount never overflows the default 28 digits.
_CONTEXT = Context(prec=100)


def _decimal(value: Any) -> Decimal | None:
    """``value`` as a finite Decimal, or None when it is not a number."""
    if isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def _significant(value: Decimal, digits: int) -> Decimal:
    """Round ``value`` (non-zero) to ``digits`` significant digits."""
    exponent = value.adjusted() - digits + 1
    return value.quantize(
        Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP, context=_CONTEXT
    )


def _plain(value: Decimal, *, min_decimals: int = 0) -> str:
    """Fixed-point text with thousands separators, trailing zeros dropped down
    to ``min_decimals``."""
    text = f"{value:,f}"
    if "." in text:
        whole, fraction = text.split(".")
        fraction = fraction.rstrip("0").ljust(min_decimals, "0")
        return f"{whole}.{fraction}" if fraction else whole
    return f"{text}.{'0' * min_decimals}" if min_decimals else text


def money(value: Any) -> str:
    """A dollar amount by the rule in the module docstring."""
    if value is None or value == "":
        return MISSING
    amount = _decimal(value)
    if amount is None:
        return str(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0:
        return "$0.00"
    if amount < 1:
        amount = _significant(amount, 2)
    if amount >= 1:
        amount = amount.quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP, context=_CONTEXT
        )
    return f"{sign}${_plain(amount, min_decimals=2)}"


def number(value: Any, digits: int = 3) -> str:
    """A score, latency or count: ``digits`` significant digits, never fewer
    than the integer part."""
    if value is None or value == "":
        return MISSING
    amount = _decimal(value)
    if amount is None:
        return str(value)
    if amount == 0:
        return "0"
    if amount.adjusted() + 1 >= digits:
        amount = amount.quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_CONTEXT)
    else:
        amount = _significant(amount, digits)
    return _plain(amount)


def duration_us(value: Any) -> str:
    """A duration given in microseconds: ``4.56 µs``, ``1.23 ms``."""
    amount = _decimal(value)
    if amount is None:
        return MISSING if value in (None, "") else str(value)
    if abs(amount) >= 1000:
        return f"{number(amount / 1000)} ms"
    return f"{number(amount)} µs"


def milliseconds(value: Any) -> str:
    """A latency given in milliseconds: ``12.3 ms``."""
    amount = _decimal(value)
    if amount is None:
        return MISSING if value in (None, "") else str(value)
    return f"{number(amount)} ms"


def percent(value: Any) -> str:
    """A fraction (0..1) as a percentage: ``0.0123`` -> ``1.23%``."""
    amount = _decimal(value)
    if amount is None:
        return MISSING if value in (None, "") else str(value)
    return f"{number(amount * 100)}%"
