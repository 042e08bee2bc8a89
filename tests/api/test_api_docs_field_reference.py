"""docs/api.md documents every field the API really returns (so it cannot drift),
and reads on its own (no paths outside the repository)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.fleet_rows import chat

pytestmark = pytest.mark.django_db

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def documented_fields() -> set[str]:
    """Field names of the rows of docs/api.md's "Response fields" section."""
    text = API_MD.read_text()
    section = text.split("\n## Response fields\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.M))


def field_names(body: dict[str, Any]) -> set[str]:
    """Top-level keys, and the keys of the nested objects the reference details."""
    names = set(body)
    for key in ("backend", "error"):
        if isinstance(body.get(key), dict):
            names |= {f"{key}.{inner}" for inner in body[key]}
    for entry in body.get("trace", []):
        names |= {f"trace[].{inner}" for inner in entry}
    return names


def route(client: APIClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/api/v1/route", body, format="json", headers=headers)


def test_every_field_of_route_reject_and_error_answers_is_documented(
    api_client: APIClient, fleet: Any
) -> None:
    routed = route(api_client, chat("llama3.1:8b"))
    rejected = route(
        api_client,
        chat("llama3.1:8b"),
        **{"X-Nexus-Min-Tier": "5", "X-Nexus-Privacy": "restricted"},
    )
    unknown = route(api_client, chat("no-such-model"))
    invalid = route(api_client, {"model": "llama3.1:8b"})
    assert [r.status_code for r in (routed, rejected, unknown, invalid)] == [
        200,
        503,
        404,
        400,
    ]
    documented = documented_fields()
    for response in (routed, rejected, unknown, invalid):
        missing = field_names(response.json()) - documented
        assert not missing, f"{response.status_code}: undocumented {sorted(missing)}"


def test_every_field_of_a_recorded_decision_and_the_list_is_documented(
    api_client: APIClient, fleet: Any
) -> None:
    routed = route(api_client, chat("llama3.1:8b")).json()
    rejected = route(
        api_client, chat("llama3.1:8b"), **{"X-Nexus-Privacy": "zone:nowhere"}
    ).json()
    documented = documented_fields()
    for decision_id in (routed["decision_id"], rejected["decision_id"]):
        detail = api_client.get(f"/api/v1/decisions/{decision_id}/")
        assert detail.status_code == 200
        missing = field_names(detail.json()) - documented
        assert not missing, f"undocumented {sorted(missing)}"
    page = api_client.get("/api/v1/decisions/").json()
    assert not set(page) - documented
    assert not set(page["results"][0]) - documented


def test_the_api_docs_name_no_path_outside_the_repository() -> None:
    text = API_MD.read_text()
    assert "../" not in text
    assert not re.search(r"(?<![\w/.:])/(work|home|tmp|shared)/", text)


def test_every_field_of_the_spend_answer_is_documented(
    api_client: APIClient, fleet: Any
) -> None:
    from routing.services.ledger import usage_record

    decision_id = route(api_client, chat("llama3.1:8b")).json()["decision_id"]
    usage_record(
        decision_id=uuid.UUID(decision_id),
        input_tokens=10,
        output_tokens=5,
        source="reported",
        reporter=None,
    )
    documented = documented_fields()
    for groups in ("client,model", "backend,zone", "day"):
        body = api_client.get("/api/v1/spend/", {"group_by": groups}).json()
        assert body["rows"], groups
        names = set(body) | set(body["total"])
        for row in body["rows"]:
            names |= {
                name if name in body["total"] else f"rows[].{name}" for name in row
            }
        assert not names - documented, f"undocumented {sorted(names - documented)}"
