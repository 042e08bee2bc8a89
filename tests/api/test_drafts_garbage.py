"""No body sent to /api/v1/drafts/ gets a 500: 201 or a 400 naming a field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from routing.api.draft_changes import draft_fields
from routing.models import DRAFT_RESOURCES

pytestmark = pytest.mark.django_db

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["local", "cloud", "local-gpu", "llama*", "zone:eu", "\x00"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = sorted(
    {name for resource in DRAFT_RESOURCES for name in draft_fields(resource)}
    | {"health", "spent_usd", "scope", "zones"}
)
NAMES = st.sampled_from(["local", "cloud", "global", "local-gpu", "eu", "gpt-4o"]) | (
    st.text(max_size=20)
)
CHANGES = (
    st.fixed_dictionaries(
        {
            "resource": st.sampled_from([*DRAFT_RESOURCES, "racks"]) | JSON,
            "action": st.sampled_from(["create", "update", "delete", "move"]),
            "name": NAMES | JSON,
            "fields": st.dictionaries(st.sampled_from(FIELD_NAMES), JSON, max_size=5)
            | JSON,
        }
    )
    | JSON
)
BODIES = (
    st.fixed_dictionaries(
        {"name": NAMES | JSON, "changes": st.lists(CHANGES, max_size=4) | JSON},
        optional={"description": st.text(max_size=40) | JSON},
    )
    | JSON
)


def _answers_without_a_server_error(response: Any) -> None:
    assert response.status_code in (201, 400), (response.status_code, response.content)
    if response.status_code == 400:
        error = response.json()["error"]
        assert error["type"] == "invalid_request" and error["message"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES)
def test_a_generated_draft_is_stored_or_refused_never_a_500(
    admin_api_client: APIClient, fleet: Any, body: Any
) -> None:
    _answers_without_a_server_error(
        admin_api_client.post("/api/v1/drafts/", body, format="json")
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES)
def test_a_generated_patch_is_applied_or_refused_never_a_500(
    admin_api_client: APIClient, fleet: Any, body: Any
) -> None:
    created = admin_api_client.post(
        "/api/v1/drafts/", {"name": "base", "changes": []}, format="json"
    ).json()
    response = admin_api_client.patch(
        f"/api/v1/drafts/{created['id']}/", body, format="json"
    )
    assert response.status_code in (200, 400), (response.status_code, response.content)


GARBAGE = [
    b"",
    b"null",
    b"[]",
    b'"x"',
    b"{",
    b'{"name": "x", "changes": [{"resource": "zones", "action": "create", "name": "a\\u0000"}]}',
    b'{"name": "x", "changes": [{"resource": "budgets", "action": "create", "name": "b", "fields": {"scope": {"clients": ["a\\u0000"]}}}]}',
    b'{"name": "x", "changes": [{"resource": "backends", "action": "update", "name": "local-gpu", "fields": {"models": "x"}}]}',
    b'{"name": "x", "changes": [{"resource": "backends", "action": "update", "name": "local-gpu", "fields": {"models": [{"name": "a"}, {"name": "a"}]}}]}',
    b'{"name": "x", "changes": [{"resource": "backends", "action": "update", "name": "local-gpu", "fields": {"priority": 1e400}}]}',
    b'{"name": "x", "changes": [{"resource": "policies", "action": "create", "name": "p", "fields": {"max_cost_per_request_usd": "1e9999"}}]}',
    b'{"name": "x", "changes": [{"resource": "fallbacks", "action": "create", "name": "gpt-4o", "fields": {"fallbacks": [["x"]]}}]}',
    b'{"name": "x", "changes": [{"resource": "aliases", "action": "create", "name": "a", "fields": {"target": "a"}}]}',
]


@pytest.mark.parametrize("raw", GARBAGE)
def test_garbage_bodies_are_refused_or_stored_never_a_500(
    admin_api_client: APIClient, fleet: Any, raw: bytes
) -> None:
    response = admin_api_client.post(
        "/api/v1/drafts/", raw, content_type="application/json"
    )
    _answers_without_a_server_error(response)
