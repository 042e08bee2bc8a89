"""Compact JSON for the hot paths: orjson, the standard library as fallback.

orjson encodes a routing payload several times faster than ``json``; it refuses
a few things ``json`` accepts (integers past 64 bits, non-string keys), and for
those the standard library answers instead, so callers never see the difference.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def json_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_text(value: Any) -> str:
    """``value`` as compact JSON text."""
    return json_bytes(value).decode()


def json_load(text: str | bytes) -> Any:
    """The value of JSON ``text``: orjson, the standard library for what orjson
    refuses (``NaN``, integers past 64 bits), as ``json_bytes`` writes them."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
