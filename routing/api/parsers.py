"""The API's one JSON parser: refuses what a proxy in front might read differently.

DRF's ``JSONParser`` plus two refusals, each a 400 ``invalid_request``:

* nesting deeper than ``MAX_JSON_DEPTH`` arrays/objects, checked on the text
  before parsing (a 100,000-deep body used to recurse into a 500);
* a key given twice in one object, at any depth, named by its path in
  ``fields`` (e.g. ``nexus.privacy``) instead of silently keeping the last.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

from routing.errors import NexusError

MAX_JSON_DEPTH = 64

#: A JSON string; the closing quote is optional so that an unterminated string is
#: consumed once instead of the match restarting at every later quote (which made
#: a 40 KB body take seconds).
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays/objects in ``text`` nest deeper than ``limit`` (strings skipped)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class _DuplicateKeys(dict[str, Any]):
    """An object in which some keys were given more than once."""

    duplicates: list[str]


def _duplicate_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths (``nexus.privacy``, ``messages.0.role``) of repeated keys."""
    found: list[str] = []
    if isinstance(value, dict):
        found.extend(f"{prefix}{key}" for key in getattr(value, "duplicates", ()))
        for key, item in value.items():
            found.extend(_duplicate_paths(item, f"{prefix}{key}."))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_duplicate_paths(item, f"{prefix}{index}."))
    return found


class _RepeatedKey(Exception):
    """Raised from inside the fast decoder; the slow one then finds the paths."""


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _RepeatedKey
    return obj


def _mark_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    counts = Counter(key for key, _ in pairs)
    marked = _DuplicateKeys(obj)
    marked.duplicates = sorted(key for key, count in counts.items() if count > 1)
    return marked


# Built once: json.loads with options builds a decoder (and its C scanner) per call.
_DECODER = json.JSONDecoder(
    parse_constant=strict_constant, object_pairs_hook=_refuse_repeats
)
_MARKING_DECODER = json.JSONDecoder(
    parse_constant=strict_constant, object_pairs_hook=_mark_repeats
)


def strict_json_loads(text: str) -> Any:
    """``json.loads`` that refuses deep nesting, repeated keys, NaN and Infinity."""
    if json_depth_exceeds(text):
        raise NexusError(
            f"The JSON body nests arrays/objects deeper than {MAX_JSON_DEPTH} "
            "levels; send a flatter body."
        )
    try:
        return _DECODER.decode(text)
    except _RepeatedKey:
        paths = _duplicate_paths(_MARKING_DECODER.decode(text))
    raise NexusError(
        f"The JSON body gives {', '.join(paths)} more than once; send each key "
        "once (readers disagree on which copy wins).",
        fields={path: ["Given more than once."] for path in paths},
    )


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with ``strict_json_loads``: same media type, same errors."""

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        encoding = get_encoding(parser_context or {})
        try:
            return strict_json_loads(stream.read().decode(encoding))
        except ValueError as exc:  # also UnicodeDecodeError
            raise ParseError(f"JSON parse error - {exc}") from None
