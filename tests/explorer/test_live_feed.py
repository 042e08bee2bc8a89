"""The live feed: only rows newer than the cursor, the next cursor in a header."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from django.urls import reverse

from tests.explorer.conftest import record

pytestmark = pytest.mark.django_db

FEED = "explorer:decision-feed"


def test_the_feed_returns_only_newer_rows_matching_the_filters(staff_client, fleet):
    old = record("gpt-4o", request_id="old-one")
    newer = record("gpt-4o", request_id="new-one")
    record("no-such-model", request_id="new-reject")
    newer.created_at = old.created_at + timedelta(seconds=1)
    response = staff_client.get(
        reverse(FEED),
        {"after": old.created_at.isoformat(), "outcome": "route"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "new-one" in html
    assert "old-one" not in html and "new-reject" not in html
    assert response["X-Nexus-Cursor"] > old.created_at.isoformat()
    # The out-of-band poller asks for rows after the newest one next time.
    assert 'hx-swap-oob="true"' in html and "outcome=route" in html


def test_the_feed_compares_an_after_in_any_utc_offset_in_utc(staff_client, fleet):
    # -22:25 is a valid offset for Python but out of PostgreSQL's range.
    latest = record("gpt-4o", request_id="latest")
    far_west = timezone(-timedelta(hours=22, minutes=25))
    just_before = latest.created_at.astimezone(far_west) - timedelta(microseconds=1)
    response = staff_client.get(reverse(FEED), {"after": just_before.isoformat()})
    assert response.status_code == 200
    assert "latest" in response.content.decode()


def test_the_feed_answers_204_when_nothing_is_newer(staff_client, fleet):
    latest = record("gpt-4o")
    response = staff_client.get(reverse(FEED), {"after": latest.created_at.isoformat()})
    assert response.status_code == 204
    assert response["X-Nexus-Cursor"] == latest.created_at.isoformat()


@pytest.mark.parametrize(
    "after", ["", "soon", "2025-13-45T00:00:00", "0001-01-01T00:00:00+05:00"]
)
def test_a_bad_after_is_a_400(staff_client, after):
    response = staff_client.get(reverse(FEED), {"after": after})
    assert response.status_code == 400


def test_the_first_page_carries_the_newest_timestamp_for_the_poller(
    staff_client, fleet
):
    latest = record("gpt-4o")
    response = staff_client.get(reverse("explorer:decisions"))
    assert response["X-Nexus-Cursor"] == latest.created_at.isoformat()
    assert 'hx-trigger="every 5s"' in response.content.decode()
