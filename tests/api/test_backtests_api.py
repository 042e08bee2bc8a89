"""``/api/v1/backtests/``: request, read, list changes, cancel; errors name the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from routing.api.draft_changes import change_write
from routing.models import Backtest, BacktestChange, DraftStatus
from routing.services.backtests import backtest_run
from routing.services.drafts import DraftChange, draft_create, draft_discard
from tests.services.test_backtests import record_traffic

pytestmark = pytest.mark.django_db

URL = "/api/v1/backtests/"


def window() -> dict[str, str]:
    now = timezone.now()
    return {
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(minutes=1)).isoformat(),
    }


def move_local_to_cloud() -> int:
    change = DraftChange("backends", "update", "local-gpu", {"privacy_zone": "cloud"})
    return draft_create(name="m", changes=[change], actor="o", write=change_write).pk


def bad(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    return response.json()["error"]["fields"]


def test_a_request_is_queued_and_an_identical_one_answers_the_same_backtest(
    admin_api_client: Any, fleet: Any
) -> None:
    body = {"draft": move_local_to_cloud(), **window(), "model": "llama3.1:8b"}
    first = admin_api_client.post(URL, body, format="json")
    assert first.status_code == 202, first.json()
    data = first.json()
    assert data["status"] == "queued"
    assert data["filters"] == {"model": "llama3.1:8b"}
    assert data["progress"] == {"done": 0, "total": 0}
    again = admin_api_client.post(URL, body, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == data["id"]
    other = admin_api_client.post(URL, {**body, "model": "gpt-4o"}, format="json")
    assert other.status_code == 202
    assert other.json()["id"] != data["id"]
    assert Backtest.objects.count() == 2


def test_bad_requests_name_the_field(admin_api_client: Any, fleet: Any) -> None:
    span = window()
    assert "since" in bad(admin_api_client, {"draft": None, **span, "since": "x"})
    swapped = {"draft": None, "since": span["until"], "until": span["since"]}
    assert "until" in bad(admin_api_client, swapped)
    assert "draft" in bad(admin_api_client, {"draft": 999, **span})
    assert "outcome" in bad(admin_api_client, {"draft": None, **span, "outcome": "x"})
    discarded = move_local_to_cloud()
    draft_discard(draft_id=discarded)
    fields = bad(admin_api_client, {"draft": discarded, **span})
    assert DraftStatus.DISCARDED in fields["draft"][0]
    assert not Backtest.objects.exists()


def test_backtests_need_an_admin_key_or_a_staff_login(
    api_client: Any, client: Any, django_user_model: Any, db: None
) -> None:
    body = {"draft": None, **window()}
    assert api_client.post(URL, body, format="json").status_code == 403
    assert api_client.get(URL).status_code == 403
    assert client.post(URL, body, content_type="application/json").status_code in {
        401,
        403,
    }
    staff = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    client.force_login(staff)
    accepted = client.post(URL, body, content_type="application/json")
    assert accepted.status_code == 202, accepted.json()


def test_a_finished_backtest_shows_its_summary_and_changes(
    admin_api_client: Any, fleet: Any, settings: Any
) -> None:
    record_traffic(settings, ("smart",))
    body = {"draft": move_local_to_cloud(), **window()}
    backtest_id = admin_api_client.post(URL, body, format="json").json()["id"]
    backtest_run(backtest_id=backtest_id, write=change_write)
    data = admin_api_client.get(f"{URL}{backtest_id}/").json()
    assert data["status"] == "done"
    assert data["progress"]["done"] == data["progress"]["total"] > 0
    summary = data["summary"]
    assert set(summary) >= {
        "total",
        "unchanged",
        "changed",
        "outcomes",
        "newly_rejected_by",
        "backend_shift",
        "estimated_cost_usd",
        "tier_downgrades",
        "privacy_violations",
        "approximate",
    }
    changed = summary["changed"]
    assert changed > 2
    page = admin_api_client.get(f"{URL}{backtest_id}/changes/?page_size=2").json()
    assert len(page["results"]) == 2
    first = page["results"][0]
    assert set(first) == {
        "decision_id",
        "created_at",
        "requested_model",
        "outcome_change",
        "before",
        "after",
    }
    assert first["before"]["backend"] == "local-gpu"
    assert first["after"]["outcome"] == "reject"
    assert first["after"]["rejections"][0]["reconciler"] == "privacy"
    seen = len(page["results"])
    while page["next"]:
        page = admin_api_client.get(page["next"]).json()
        seen += len(page["results"])
    assert seen == changed
    by_change = admin_api_client.get(
        f"{URL}{backtest_id}/changes/?outcome_change=route->reject"
    ).json()
    assert len(by_change["results"]) == changed
    none = admin_api_client.get(
        f"{URL}{backtest_id}/changes/?outcome_change=reject->route"
    ).json()
    assert none["results"] == []
    by_backend = admin_api_client.get(f"{URL}{backtest_id}/changes/?backend=cloud-gpt")
    assert by_backend.json()["results"] == []
    wrong = admin_api_client.get(f"{URL}{backtest_id}/changes/?outcome_change=x")
    assert wrong.status_code == 400
    assert "outcome_change" in wrong.json()["error"]["fields"]


def test_delete_cancels_a_queued_backtest_and_removes_a_finished_one(
    admin_api_client: Any, fleet: Any, settings: Any
) -> None:
    record_traffic(settings, ("smart",))
    body = {"draft": move_local_to_cloud(), **window()}
    queued = admin_api_client.post(URL, body, format="json").json()["id"]
    assert admin_api_client.delete(f"{URL}{queued}/").status_code == 204
    assert Backtest.objects.get(pk=queued).status == "cancelled"
    # A cancelled one never runs, and the same request may be made again.
    assert backtest_run(backtest_id=queued, write=change_write) is None
    again = admin_api_client.post(URL, body, format="json").json()["id"]
    assert again != queued
    backtest_run(backtest_id=again, write=change_write)
    assert BacktestChange.objects.filter(backtest_id=again).exists()
    assert admin_api_client.delete(f"{URL}{again}/").status_code == 204
    assert not Backtest.objects.filter(pk=again).exists()
    assert not BacktestChange.objects.filter(backtest_id=again).exists()
    assert admin_api_client.delete(f"{URL}{again}/").status_code == 404
