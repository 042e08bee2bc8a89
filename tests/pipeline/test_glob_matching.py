"""Model-pattern globs: fnmatch's meaning, in time that cannot blow up."""

from __future__ import annotations

import fnmatch
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.pipeline.rules import ConfigRuleError, glob_matches, validate_model_pattern
from routing.pipeline.types import Outcome, PolicySnapshot

from .fleet import config, local, offer, request, route

# Pathological for a backtracking matcher; each pair must still be decided fast.
WORST_CASES = [
    ("*-*-*-*-*-mini", "-" * 200),
    ("*" * 150 + "x", "-" * 200),
    ("*" * 199 + "x", "x" * 199 + "y"),
    ("*a" * 100, "a" * 199 + "b"),
    ("*" + "a?" * 49 + "b*", "a" * 200),
    ("?" * 100 + "*" + "?" * 99, "?" * 200),
]


@settings(max_examples=500, deadline=None)
@given(
    pattern=st.text(alphabet="ab-*?", min_size=1, max_size=12),
    name=st.text(alphabet="abA-", max_size=14),
)
def test_a_glob_matches_exactly_when_fnmatchcase_does(pattern: str, name: str) -> None:
    assert glob_matches(pattern, name) == fnmatch.fnmatchcase(name, pattern)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("gpt-4o*", "gpt-4o-mini", True),
        ("gpt-4o*", "GPT-4o-mini", False),
        ("*", "", True),
        ("?", "", False),
        ("a?c", "abc", True),
        ("a?c", "abbc", False),
        ("*mini", "gpt-4o-mini", True),
        ("*-*-mini", "a-b-mini", True),
        ("*-*-mini", "a-mini", False),
        ("llama*:8b", "llama3.1:8b", True),
        ("a**b", "ab", True),
        ("ab*ba", "aba", False),
    ],
)
def test_a_glob_matches_the_whole_name_case_sensitively(
    pattern: str, name: str, expected: bool
) -> None:
    assert glob_matches(pattern, name) is expected


@pytest.mark.parametrize(("pattern", "name"), WORST_CASES)
def test_a_worst_case_pattern_and_name_route_in_under_10_ms(
    pattern: str, name: str
) -> None:
    validate_model_pattern(pattern)
    cfg = config(
        local("l", models=(offer(name),)),
        policies=(PolicySnapshot("pathological", pattern),),
    )
    started = time.perf_counter()
    result = route(cfg, request(name))
    elapsed = time.perf_counter() - started
    assert result.outcome is Outcome.ROUTE
    assert elapsed < 0.010, f"{elapsed * 1000:.1f} ms for {pattern!r}"


def test_a_pattern_over_200_characters_is_refused() -> None:
    validate_model_pattern("*" * 200)
    with pytest.raises(ConfigRuleError, match="1-200 characters"):
        validate_model_pattern("a" * 201)
