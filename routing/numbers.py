"""What a number typed by a person or a client may look like.

Python's ``int()``, ``float()`` and ``Decimal()`` accept more than a client
means to send: ``1_0`` (10), ``inf``, ``nan``, ``1e3``, surrounding whitespace,
non-ASCII digits. Every number that arrives as text (headers, query strings,
form fields, JSON strings) must be plain decimal notation first.
"""

from __future__ import annotations

import re

PLAIN_INTEGER = re.compile(r"-?[0-9]+")
PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def is_plain_number(text: str, *, whole: bool = False) -> bool:
    """Whether ``text`` is ``[-]digits`` (``whole``) or ``[-]digits[.digits]``."""
    pattern = PLAIN_INTEGER if whole else PLAIN_DECIMAL
    return pattern.fullmatch(text) is not None
