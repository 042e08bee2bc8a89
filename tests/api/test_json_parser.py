"""The API's JSON parser: deep nesting and repeated keys are 400s, never a 500
or a silent "last one wins"."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.api.parsers import MAX_JSON_DEPTH, json_depth_exceeds
from tests.fleet_rows import chat

pytestmark = pytest.mark.django_db


def post_raw(client: APIClient, path: str, text: str, **headers: str) -> Any:
    return client.generic(
        "POST", path, text.encode(), content_type="application/json", headers=headers
    )


def assert_invalid_request(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    return error


@pytest.mark.parametrize("bracket", ["[", '{"a":'])
def test_a_100000_deep_json_body_is_a_400_not_a_500(
    api_client: APIClient, bracket: str
) -> None:
    error = assert_invalid_request(
        post_raw(api_client, "/api/v1/route", bracket * 100_000)
    )
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]


def test_a_deep_body_is_refused_on_configuration_endpoints_too(
    admin_api_client: APIClient,
) -> None:
    body = '{"name": "deep", "description": ' + "[" * 5000 + "]" * 5000 + "}"
    assert_invalid_request(post_raw(admin_api_client, "/api/v1/zones/", body))


def test_nesting_up_to_the_limit_routes_and_one_more_level_is_refused(
    api_client: APIClient, fleet: Any
) -> None:
    # body object (1) > messages (2) > message (3) > content (4) > part (5) > ...
    def with_part_depth(levels: int) -> str:
        inner: Any = "x"
        for _ in range(levels):
            inner = {"k": inner}
        body = chat("llama3.1:8b")
        body["messages"][0]["content"] = [{"type": "text", "text": "hi", "x": inner}]
        return json.dumps(body)

    allowed = with_part_depth(MAX_JSON_DEPTH - 5)
    assert not json_depth_exceeds(allowed)
    assert post_raw(api_client, "/api/v1/route", allowed).status_code == 200
    assert_invalid_request(
        post_raw(api_client, "/api/v1/route", with_part_depth(MAX_JSON_DEPTH - 4))
    )


def test_brackets_inside_strings_do_not_count_as_nesting(
    api_client: APIClient, fleet: Any
) -> None:
    text = '[{"\\"' + "[" * 5000 + "{" * 5000
    response = post_raw(
        api_client, "/api/v1/route", json.dumps(chat("llama3.1:8b", text))
    )
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            '{"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}],'
            ' "nexus": {"privacy": "restricted", "privacy": "unrestricted"}}',
            "nexus.privacy",
        ),
        (
            '{"model": "llama3.1:8b", "model": "gpt-4o",'
            ' "messages": [{"role": "user", "content": "hi"}]}',
            "model",
        ),
        (
            '{"model": "llama3.1:8b", "messages": [{"role": "user", "content": "a"},'
            ' {"role": "user", "role": "system", "content": "b"}]}',
            "messages.1.role",
        ),
    ],
)
def test_a_key_given_twice_is_a_400_naming_its_path(
    api_client: APIClient, fleet: Any, text: str, path: str
) -> None:
    error = assert_invalid_request(post_raw(api_client, "/api/v1/route", text))
    assert error["fields"] == {path: ["Given more than once."]}
    assert path in error["message"]


def test_a_key_given_twice_in_a_configuration_edit_is_refused(
    admin_api_client: APIClient,
) -> None:
    body = '{"name": "eu-private", "is_private": true, "is_private": false}'
    error = assert_invalid_request(post_raw(admin_api_client, "/api/v1/zones/", body))
    assert error["fields"] == {"is_private": ["Given more than once."]}


def test_nan_and_malformed_json_stay_400s(api_client: APIClient, fleet: Any) -> None:
    nan = '{"model": "llama3.1:8b", "messages": [], "max_tokens": NaN}'
    assert_invalid_request(post_raw(api_client, "/api/v1/route", nan))
    assert_invalid_request(post_raw(api_client, "/api/v1/route", '{"model": '))
    not_utf8 = api_client.generic(
        "POST", "/api/v1/route", b'{"model": "\xff"}', content_type="application/json"
    )
    assert_invalid_request(not_utf8)


def test_an_unterminated_string_is_scanned_in_linear_time(api_client: Any) -> None:
    """An unterminated string after deep nesting made the depth check restart at
    every later quote: 40 KB took 8.5 s of a worker's CPU."""
    body = "[" * 65 + '"' + '\\"' * 400_000  # ~800 KB, below the upload limit
    started = time.perf_counter()
    response = api_client.post(
        "/api/v1/route", data=body, content_type="application/json"
    )
    assert time.perf_counter() - started < 2.0
    assert response.status_code == 400
