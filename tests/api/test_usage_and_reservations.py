"""Routes to priced backends reserve their estimate; usage reports settle it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.models import Budget, LedgerEntry, UsageReport
from tests.fleet_rows import chat, set_budget

pytestmark = pytest.mark.django_db


def route_gpt(client: APIClient, **nexus: Any) -> dict[str, Any]:
    body = chat("gpt-4o", text="x" * 4000, max_tokens=1000, nexus=nexus or None)
    if not nexus:
        body.pop("nexus")
    response = client.post("/api/v1/route", body, format="json")
    return response.json()


def report(client: APIClient, decision: str, **fields: Any) -> Any:
    payload = {"decision_id": decision, "input_tokens": 1000, "output_tokens": 500}
    return client.post("/api/v1/usage", payload | fields, format="json")


def test_a_priced_route_reserves_its_estimate_on_the_enabled_budget(
    api_client: APIClient, fleet: Any
) -> None:
    set_budget("100")
    decision = route_gpt(api_client)
    # 1000 input tokens * $0.0025/1k + 1000 output tokens * $0.01/1k
    assert decision["estimated_cost_usd"] == pytest.approx(0.0125)
    budget = Budget.objects.get(name="global")
    assert budget.reserved_usd == Decimal("0.0125")
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount_usd, str(entry.decision_id)) == (
        "reserve",
        Decimal("0.0125"),
        decision["decision_id"],
    )


def test_free_routes_and_disabled_budgets_reserve_nothing(
    api_client: APIClient, fleet: Any
) -> None:
    route_gpt(api_client)  # budget disabled
    set_budget("100")
    api_client.post(
        "/api/v1/route",
        chat("llama3.1:8b", nexus={"privacy": "restricted"}),
        format="json",
    )
    assert not LedgerEntry.objects.exists()


def test_usage_settles_the_reservation_and_books_the_real_cost(
    api_client: APIClient, fleet: Any
) -> None:
    set_budget("100")
    decision = route_gpt(api_client)
    response = report(api_client, decision["decision_id"], cost_usd="0.02")
    assert response.status_code == 201
    budget = Budget.objects.get(name="global")
    assert (budget.reserved_usd, budget.spent_usd) == (Decimal(0), Decimal("0.02"))
    kinds = sorted(LedgerEntry.objects.values_list("kind", "amount_usd"))
    assert kinds == [
        ("release", Decimal("-0.0125")),
        ("reserve", Decimal("0.0125")),
        ("spend", Decimal("0.02")),
    ]


def test_usage_without_a_cost_is_priced_from_the_backend(
    api_client: APIClient, fleet: Any
) -> None:
    set_budget("100")
    decision = route_gpt(api_client)
    response = report(api_client, decision["decision_id"])
    # 1000 in * 0.0025/1k + 500 out * 0.01/1k
    assert response.json()["cost_usd"] == pytest.approx(0.0075)


def test_the_same_report_twice_changes_nothing(
    api_client: APIClient, fleet: Any
) -> None:
    set_budget("100")
    decision = route_gpt(api_client)
    first = report(api_client, decision["decision_id"], cost_usd="0.02")
    ledger = list(LedgerEntry.objects.values_list("id", flat=True))
    second = report(api_client, decision["decision_id"], cost_usd="0.02")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["created"] is False
    assert list(LedgerEntry.objects.values_list("id", flat=True)) == ledger
    assert Budget.objects.get(name="global").spent_usd == Decimal("0.02")


def test_a_different_report_for_the_same_decision_is_409(
    api_client: APIClient, fleet: Any
) -> None:
    decision = route_gpt(api_client)
    report(api_client, decision["decision_id"])
    response = report(api_client, decision["decision_id"], output_tokens=900)
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict"
    assert UsageReport.objects.get().output_tokens == 500


def test_usage_for_an_unknown_decision_is_404(
    api_client: APIClient, fleet: Any
) -> None:
    response = report(api_client, "00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert "decision_id" in response.json()["error"]["fields"]


def test_usage_for_a_rejected_decision_is_409(
    api_client: APIClient, fleet: Any
) -> None:
    decision = route_gpt(api_client, privacy="restricted")
    response = report(api_client, decision["decision_id"])
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": "many"}, "output_tokens"),
        ({"cost_usd": -0.5}, "cost_usd"),
        ({"decision_id": "not-a-uuid"}, "decision_id"),
    ],
)
def test_bad_usage_reports_are_400_naming_the_field(
    api_client: APIClient, fleet: Any, fields: dict[str, Any], bad: str
) -> None:
    decision = route_gpt(api_client)
    response = report(api_client, decision["decision_id"], **fields)
    assert response.status_code == 400
    assert bad in response.json()["error"]["fields"]


def test_at_the_hard_limit_block_cloud_routes_to_free_backends_only(
    api_client: APIClient, fleet: Any
) -> None:
    set_budget("0.01")  # below one gpt-4o estimate
    response = api_client.post(
        "/api/v1/route", chat("llama3.1:8b", max_tokens=100000), format="json"
    )
    assert response.json()["backend"]["name"] == "local-gpu"
    rejected = route_gpt(api_client)
    assert rejected["outcome"] == "reject"
    assert "resets on" in rejected["error"]["message"]
    assert Budget.objects.get(name="global").reserved_usd == 0


def key_client(name: str, *, is_admin: bool = False) -> APIClient:
    from routing.services.api_keys import api_key_issue

    client = APIClient()
    raw = api_key_issue(name=name, is_admin=is_admin)[1]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_a_decision_records_the_api_key_that_routed_it(
    api_client: APIClient, fleet: Any
) -> None:
    from routing.models import ApiKey, RoutingDecision

    decision = route_gpt(api_client)
    row = RoutingDecision.objects.get(pk=decision["decision_id"])
    assert row.api_key_id == ApiKey.objects.get(name="svc").pk
    assert row.client == "svc"


def test_another_key_cannot_settle_a_decision_and_gets_the_unknown_decision_404(
    api_client: APIClient, fleet: Any
) -> None:
    set_budget("100")
    decision = route_gpt(api_client)
    intruder = key_client("intruder")
    stolen = report(intruder, decision["decision_id"], cost_usd="0")
    unknown = report(intruder, "00000000-0000-4000-8000-000000000000")
    assert (stolen.status_code, unknown.status_code) == (404, 404)
    # The same body as for a decision that does not exist, but for the id.
    assert stolen.json() == {
        "error": {
            **unknown.json()["error"],
            "message": unknown.json()["error"]["message"].replace(
                "00000000-0000-4000-8000-000000000000", decision["decision_id"]
            ),
        }
    }
    assert not UsageReport.objects.exists()
    assert Budget.objects.get(name="global").spent_usd == Decimal(0)
    # The real owner's report is still the first one.
    assert report(api_client, decision["decision_id"]).status_code == 201


def test_an_admin_key_may_report_usage_for_any_clients_decision(
    api_client: APIClient, admin_api_client: APIClient, fleet: Any
) -> None:
    decision = route_gpt(api_client)
    response = report(admin_api_client, decision["decision_id"], cost_usd="0.02")
    assert response.status_code == 201


def test_a_login_session_reports_usage_only_for_the_decisions_it_routed(
    api_client: APIClient, fleet: Any, django_user_model: Any
) -> None:
    alice = django_user_model.objects.create_user(username="alice", password="pw")
    bob = django_user_model.objects.create_user(username="bob", password="pw")
    session = APIClient()
    session.force_login(alice)
    own = route_gpt(session)
    keyed = route_gpt(api_client)
    assert report(session, keyed["decision_id"]).status_code == 404
    assert report(api_client, own["decision_id"]).status_code == 404
    other = APIClient()
    other.force_login(bob)
    assert report(other, own["decision_id"]).status_code == 404
    assert report(session, own["decision_id"]).status_code == 201


def test_a_new_key_under_a_deleted_keys_name_cannot_settle_its_decisions(
    api_client: APIClient, fleet: Any
) -> None:
    from routing.models import ApiKey

    decision = route_gpt(api_client)
    ApiKey.objects.filter(name="svc").delete()
    successor = key_client("svc")
    assert report(successor, decision["decision_id"]).status_code == 404
