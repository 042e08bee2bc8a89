"""Decisions list filters: validated (400 on nonsense), combined, keyset pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.explorer.conftest import record

pytestmark = pytest.mark.django_db

URL = "explorer:decisions"


@pytest.mark.parametrize(
    "query",
    [
        "outcome=maybe",
        "since=yesterday",
        "since=2025-01-02T00:00&until=2025-01-01T00:00",
        "backend=not%20a%20slug",
        "config_version=-3",
        "cursor=garbage",
        "cursor=0001-01-01T00:00:00%2B05:00_00000000-0000-4000-8000-000000000000",
    ],
)
def test_a_bad_filter_value_is_a_400_with_the_reason(staff_client, query):
    response = staff_client.get(reverse(URL) + "?" + query, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "not valid" in response.content.decode()


def test_outcome_and_model_filters_narrow_the_list(staff_client, fleet):
    record("gpt-4o", request_id="routed-1")
    record("no-such-model", request_id="rejected-1")
    html = staff_client.get(reverse(URL) + "?outcome=reject").content.decode()
    assert "rejected-1" in html and "routed-1" not in html
    html = staff_client.get(reverse(URL) + "?model=gpt-4o").content.decode()
    assert "routed-1" in html and "rejected-1" not in html


def test_excluded_by_finds_decisions_where_that_reconciler_excluded_a_backend(
    staff_client, fleet
):
    record("llama3.1:8b", privacy="restricted", request_id="private-one")
    record("gpt-4o", request_id="plain-one")
    html = staff_client.get(reverse(URL) + "?excluded_by=privacy").content.decode()
    assert "private-one" in html and "plain-one" not in html


def test_request_id_search_matches_the_request_or_the_decision_id(staff_client, fleet):
    decision = record("gpt-4o", request_id="abc-123")
    record("gpt-4o", request_id="other")
    by_request = staff_client.get(reverse(URL) + "?request_id=abc-123")
    by_id = staff_client.get(reverse(URL) + f"?request_id={decision.id}")
    for response in (by_request, by_id):
        html = response.content.decode()
        assert "abc-123" in html and ">other<" not in html


def test_pages_follow_a_keyset_cursor_without_repeating_rows(
    staff_client, fleet, monkeypatch
):
    import routing.explorer_selectors as selectors

    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    monkeypatch.setattr(
        selectors.decision_page, "__kwdefaults__", {"cursor": None, "limit": 2}
    )
    ids = [record("gpt-4o", request_id=f"r{i}").id for i in range(5)]
    seen: list[str] = []
    url = reverse(URL)
    page = staff_client.get(url)
    while True:
        seen += [str(i) for i in ids if f"d-{i}" in page.content.decode()]
        cursor = page.context["next_cursor"]
        if not cursor:
            break
        page = staff_client.get(url, {"cursor": cursor}, HTTP_HX_REQUEST="true")
        assert "<section" not in page.content.decode()  # only rows + pager
    assert sorted(seen) == sorted(str(i) for i in ids)
    assert len(seen) == len(set(seen))


def test_the_time_range_filter_uses_since_and_until(staff_client, fleet):
    record("gpt-4o", request_id="now-one")
    html = staff_client.get(
        reverse(URL) + "?since=2000-01-01T00:00&until=2000-01-02T00:00"
    ).content.decode()
    assert "now-one" not in html
    html = staff_client.get(reverse(URL) + "?since=2000-01-01T00:00").content.decode()
    assert "now-one" in html
