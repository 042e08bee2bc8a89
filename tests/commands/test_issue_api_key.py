"""``issue_api_key`` prints the raw key once, last; only a hash is stored."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from routing.models import ApiKey

pytestmark = pytest.mark.django_db


def issue(*args: str) -> str:
    out = StringIO()
    call_command("issue_api_key", *args, stdout=out)
    return out.getvalue()


def test_the_raw_key_is_the_last_line_and_only_its_sha256_is_stored() -> None:
    raw = issue("billing-service").strip().splitlines()[-1]
    key = ApiKey.objects.get(name="billing-service")
    assert raw.startswith("nx_") and len(raw) > 40
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    stored = " ".join(str(value) for value in ApiKey.objects.values().get().values())
    assert raw not in stored
    assert not key.is_admin


def test_admin_flag_makes_an_admin_key() -> None:
    issue("ops", "--admin")
    assert ApiKey.objects.get(name="ops").is_admin


def test_two_keys_never_share_a_value() -> None:
    first = issue("a").splitlines()[-1]
    second = issue("b").splitlines()[-1]
    assert first != second


def test_a_bad_or_taken_name_is_refused_with_the_reason() -> None:
    issue("dup")
    with pytest.raises(CommandError, match="already exists"):
        issue("dup")
    with pytest.raises(CommandError, match="lower-case letters"):
        issue("Not A Slug")
