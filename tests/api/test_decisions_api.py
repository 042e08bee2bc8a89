"""GET /api/v1/decisions/: newest first, filters, cursor pages, full detail."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from rest_framework.test import APIClient

from routing.decision_storage import is_compact
from routing.models import RoutingDecision
from routing.services.decision_templates import decision_templates_forget
from tests.fleet_rows import add_backend, chat, priced

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {}}}

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(api_client: APIClient, fleet: Any) -> list[dict[str, Any]]:
    calls = [
        (chat("llama3.1:8b"), {"X-Nexus-Privacy": "restricted"}),
        (chat("gpt-4o"), {}),
        (chat("gpt-4o", nexus={"privacy": "restricted"}), {}),
        (chat("missing-model"), {}),
    ]
    return [
        api_client.post("/api/v1/route", body, format="json", headers=headers).json()
        for body, headers in calls
    ]


def ids(response: Any) -> list[str]:
    return [row["decision_id"] for row in response.json()["results"]]


def test_decisions_are_listed_newest_first(api_client: APIClient, history: Any) -> None:
    response = api_client.get("/api/v1/decisions/")
    assert ids(response) == [d["decision_id"] for d in reversed(history)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("outcome=reject", [3, 2]),
        ("model=gpt-4o", [2, 1]),
        ("backend=local-gpu", [0]),
        ("excluded_by=privacy", [2, 0]),
    ],
)
def test_filters_narrow_the_list(
    api_client: APIClient, history: Any, query: str, expected: list[int]
) -> None:
    response = api_client.get(f"/api/v1/decisions/?{query}")
    assert ids(response) == [history[i]["decision_id"] for i in expected]


def test_since_and_until_bound_the_time(api_client: APIClient, history: Any) -> None:
    assert ids(api_client.get("/api/v1/decisions/?since=2999-01-01T00:00:00Z")) == []
    assert (
        len(ids(api_client.get("/api/v1/decisions/?until=2999-01-01T00:00:00Z"))) == 4
    )


def test_a_time_bound_in_any_offset_is_compared_in_utc(
    api_client: APIClient, history: Any
) -> None:
    # -22:25 is a valid offset for Python but out of PostgreSQL's range.
    created = api_client.get("/api/v1/decisions/").json()["results"][-1]["created_at"]
    far_west = timezone(-timedelta(hours=22, minutes=25))
    oldest = datetime.fromisoformat(created).astimezone(far_west)

    def listed(query: str) -> list[str]:
        response = api_client.get(f"/api/v1/decisions/?{query}")
        assert response.status_code == 200, response.content
        return ids(response)

    assert history[0]["decision_id"] not in listed(f"until={quote(oldest.isoformat())}")
    just_after = (oldest + timedelta(microseconds=1)).isoformat()
    assert history[0]["decision_id"] in listed(f"until={quote(just_after)}")


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"]
)
def test_a_time_bound_with_no_utc_equivalent_is_a_400_naming_it(
    api_client: APIClient, stamp: str
) -> None:
    response = api_client.get(f"/api/v1/decisions/?since={quote(stamp)}")
    assert response.status_code == 400
    assert "no UTC equivalent" in response.json()["error"]["fields"]["since"][0]


@pytest.mark.parametrize("position", ["garbage", "9999-12-31T23:59:59-05:00", None])
def test_a_cursor_not_made_by_the_api_is_a_400_naming_it(
    api_client: APIClient, history: Any, position: str | None
) -> None:
    raw = "not base64!" if position is None else f"p={position}"
    cursor = base64.b64encode(raw.encode()).decode() if position else raw
    response = api_client.get(f"/api/v1/decisions/?cursor={quote(cursor)}")
    assert response.status_code == 400
    assert "cursor" in response.json()["error"]["fields"]


@pytest.mark.parametrize("query", ["since=yesterday", "outcome=maybe", "page_size=abc"])
def test_bad_filters_are_400(api_client: APIClient, history: Any, query: str) -> None:
    response = api_client.get(f"/api/v1/decisions/?{query}")
    if query.startswith("page_size"):
        assert response.status_code == 200  # DRF ignores a bad page size
        return
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"
    assert query.split("=")[0] in response.json()["error"]["fields"]


def test_cursor_pagination_walks_every_decision(
    api_client: APIClient, history: Any
) -> None:
    seen: list[str] = []
    url: str | None = "/api/v1/decisions/?page_size=3"
    while url:
        page = api_client.get(url).json()
        seen += [row["decision_id"] for row in page["results"]]
        url = page["next"]
    assert seen == [d["decision_id"] for d in reversed(history)]


def test_detail_returns_what_route_returned_plus_record_fields(
    api_client: APIClient, history: Any
) -> None:
    rejected = history[2]
    detail = api_client.get(f"/api/v1/decisions/{rejected['decision_id']}/").json()
    for key in (
        "outcome",
        "requested_model",
        "model",
        "annotations",
        "trace",
        "warnings",
        "error",
        "request_id",
    ):
        assert detail[key] == rejected[key], key
    assert detail["client"] == "svc"
    assert {"created_at", "requirements", "pipeline_duration_us"} <= set(detail)


def test_unknown_decision_is_a_404(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/decisions/00000000-0000-4000-8000-000000000000/")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_a_recorded_decision_reads_back_exactly_as_the_route_call_answered(
    api_client: APIClient, fleet: Any
) -> None:
    """Stored compact, read back in full: every key the route call answered."""
    for i in range(40):
        add_backend(
            f"rack-{i:02d}",
            "local",
            i % 5 + 1,
            [priced("llama3.1:8b", "0", "0", tools=i % 3 > 0)],
            priority=(i * 37) % 101,
        )
    calls = [
        (chat("llama3.1:8b", tools=[TOOL]), {"X-Nexus-Privacy": "restricted"}),
        (chat("llama3.1:8b"), {"X-Nexus-Min-Tier": "4"}),
        (chat("gpt-4o", nexus={"privacy": "restricted"}), {}),
        (chat("missing-model"), {}),
    ]
    for body, headers in calls:
        routed = api_client.post(
            "/api/v1/route", body, format="json", headers=headers
        ).json()
        row = RoutingDecision.objects.get(pk=routed["decision_id"])
        assert is_compact(row.trace)
        detail = api_client.get(f"/api/v1/decisions/{routed['decision_id']}/").json()
        for key, value in routed.items():
            if key == "estimated_cost_usd":  # a decimal column: 6 places, as text
                assert Decimal(detail[key]) == Decimal(str(value)).quantize(
                    Decimal("0.000001")
                )
                continue
            assert detail[key] == value, key


def test_decisions_stored_as_deltas_answer_what_their_route_calls_did(
    api_client: APIClient,
    fleet: Any,
    django_capture_on_commit_callbacks: Any,
    django_assert_max_num_queries: Any,
) -> None:
    routed = []
    for i in range(6):
        # Each call as if committed: the first one's template is taken into use.
        with django_capture_on_commit_callbacks(execute=True):
            body = chat("llama3.1:8b", max_tokens=100 + i)
            routed.append(api_client.post("/api/v1/route", body, format="json").json())
    forms = [
        RoutingDecision.objects.get(pk=r["decision_id"]).trace["v"] for r in routed
    ]
    assert forms == [2, 3, 3, 3, 3, 3]
    decision_templates_forget()  # read as a process that never saw them
    for answer in routed[1:]:
        detail = api_client.get(f"/api/v1/decisions/{answer['decision_id']}/").json()
        assert detail["trace"] == answer["trace"]
        assert detail["annotations"] == answer["annotations"]
        assert detail["constraints"] == answer["constraints"]
    # A page reads the templates of its rows in one query, not one per row.
    decision_templates_forget()
    with django_assert_max_num_queries(8) as captured:
        page = api_client.get("/api/v1/decisions/").json()
    assert [r["decision_id"] for r in page["results"]] == [
        r["decision_id"] for r in reversed(routed)
    ]
    assert sum("routing_decisiontemplate" in q["sql"] for q in captured) == 1
