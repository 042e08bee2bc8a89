"""Configuration rules shared by the pipeline and the model layer.

Each function raises ``ConfigRuleError`` (a ``ValueError``) with a message that
says what to fix; the Django models call them from ``clean()`` so the admin,
the API and the pipeline all apply the same rule with the same words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from routing.pipeline.types import PrivacyLevel

MAX_ALIAS_HOPS = 3
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
PATTERN_RE = re.compile(r"^[A-Za-z0-9._:/@+*?-]{1,200}$")


class ConfigRuleError(ValueError):
    """A configuration value breaks a rule; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class PrivacyConstraint:
    """A parsed privacy value: unrestricted, restricted, or one named zone."""

    level: PrivacyLevel
    zone: str | None = None

    def __str__(self) -> str:
        if self.level is PrivacyLevel.ZONE:
            return f"zone:{self.zone}"
        return str(self.level)

    # Written out, not generated: compiled, they run as native code (memo and
    # step keys of every route hash and compare constraints).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivacyConstraint):
            return NotImplemented
        return self.level == other.level and self.zone == other.zone

    def __hash__(self) -> int:
        return hash((self.level, self.zone))

    def allows(self, *, zone: str | None, zone_private: bool) -> bool:
        """Whether a backend in ``zone`` (None = no zone) satisfies this constraint."""
        if self.level is PrivacyLevel.UNRESTRICTED:
            return True
        if self.level is PrivacyLevel.RESTRICTED:
            return zone is not None and zone_private
        return zone is not None and zone == self.zone


UNRESTRICTED = PrivacyConstraint(PrivacyLevel.UNRESTRICTED)
RESTRICTED = PrivacyConstraint(PrivacyLevel.RESTRICTED)


def parse_privacy(value: str) -> PrivacyConstraint:
    """Parse ``unrestricted`` | ``restricted`` | ``zone:<name>`` (case-insensitive)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if text == PrivacyLevel.UNRESTRICTED:
        return UNRESTRICTED
    if text == PrivacyLevel.RESTRICTED:
        return RESTRICTED
    if text.startswith("zone:") and SLUG_RE.match(text[5:]):
        return PrivacyConstraint(PrivacyLevel.ZONE, text[5:])
    raise ConfigRuleError(
        "Privacy must be 'unrestricted', 'restricted' or 'zone:<zone name>'; "
        f"got {value!r}."
    )


def validate_slug(value: str, *, what: str = "Name") -> None:
    """Lower-case letters, digits and inner hyphens, 1-64 characters."""
    if not isinstance(value, str) or not SLUG_RE.match(value):
        raise ConfigRuleError(
            f"{what} must be 1-64 lower-case letters, digits or hyphens, starting and "
            f"ending with a letter or digit; got {value!r}."
        )


def validate_model_pattern(pattern: str) -> None:
    """A glob over model names: letters, digits, ``._:/@+-``, wildcards ``*``/``?``."""
    if not isinstance(pattern, str) or not PATTERN_RE.match(pattern):
        raise ConfigRuleError(
            "Model pattern must be 1-200 characters of letters, digits, '._:/@+-' and "
            f"the wildcards '*' (any run) and '?' (one character); got {pattern!r}."
        )


# A run of a glob between two ``*``: its length, its text, and for a run with
# ``?`` a regex of literals and ``.`` (fixed length, so it cannot backtrack).
_Segment = tuple[int, str, re.Pattern[str] | None]


@lru_cache(maxsize=4096)
def _segments(pattern: str) -> tuple[_Segment, ...]:
    return tuple(
        (
            len(part),
            part,
            re.compile(".".join(map(re.escape, part.split("?"))), re.DOTALL)
            if "?" in part
            else None,
        )
        for part in pattern.split("*")
    )


def _fits(segment: _Segment, name: str, at: int) -> bool:
    """Whether ``segment`` matches ``name`` at index ``at`` (bounds checked by caller)."""
    _, text, regex = segment
    return name.startswith(text, at) if regex is None else bool(regex.match(name, at))


def _find(segment: _Segment, name: str, start: int, end: int) -> int:
    """The first index >= ``start`` where ``segment`` matches inside ``name[:end]``."""
    _, text, regex = segment
    if regex is None:
        return name.find(text, start, end)
    found = regex.search(name, start, end)
    return -1 if found is None else found.start()


def glob_matches(pattern: str, name: str) -> bool:
    """Case-sensitive glob match of a whole model name (``*`` run, ``?`` one char).

    fnmatch's semantics without its ``[...]`` classes, in time linear in the
    pattern's segments: the pattern is split at ``*`` into fixed-length segments;
    the first must match at the start, the last at the end, and each one between
    at its leftmost place after the previous one (leftmost leaves the most room
    for the rest, so no other placement needs trying). No backtracking: the cost
    is at most len(pattern) x len(name) character comparisons, all in C.
    """
    segments = _segments(pattern)
    first, last = segments[0], segments[-1]
    if len(segments) == 1:
        return len(name) == first[0] and _fits(first, name, 0)
    end = len(name) - last[0]
    if first[0] > end or not _fits(first, name, 0) or not _fits(last, name, end):
        return False
    position = first[0]
    for segment in segments[1:-1]:
        found = _find(segment, name, position, end)
        if found < 0:
            return False
        position = found + segment[0]
    return True


class AliasError(ConfigRuleError):
    """An alias chain loops or is longer than ``MAX_ALIAS_HOPS``."""


def resolve_alias(aliases: Mapping[str, str], name: str) -> tuple[str, tuple[str, ...]]:
    """Follow ``name`` through ``aliases``; return (model, names seen before it).

    At most ``MAX_ALIAS_HOPS`` hops; a cycle or a longer chain raises ``AliasError``.
    """
    seen: list[str] = []
    current = name
    while current in aliases:
        if current in seen:
            chain = " -> ".join([*seen, current])
            raise AliasError(f"Alias cycle: {chain}. Point one alias at a model.")
        seen.append(current)
        if len(seen) > MAX_ALIAS_HOPS:
            chain = " -> ".join([*seen, aliases[current]])
            raise AliasError(
                f"Alias chain {chain} is longer than {MAX_ALIAS_HOPS} hops; "
                "point the alias closer to the model."
            )
        current = aliases[current]
    return current, tuple(seen)


def policy_names(
    requested: str, alias_chain: tuple[str, ...], resolved: str
) -> tuple[str, ...]:
    """Every name a policy may match: requested, each alias hop, resolved."""
    return tuple(dict.fromkeys((requested, *alias_chain, resolved)))
