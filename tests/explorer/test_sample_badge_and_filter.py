"""The explorer marks sample decisions with a badge and filters them in or out."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from routing.models import RoutingDecision
from tests.explorer.conftest import record

pytestmark = pytest.mark.django_db

BADGE = 'class="badge sample"'


@pytest.fixture
def mixed(fleet: Any) -> dict[str, list[RoutingDecision]]:
    call_command("generate_decisions", "4", "--days", "1", stdout=StringIO())
    real = [record("llama3.1:8b", request_id="real-call")]
    samples = list(RoutingDecision.objects.filter(sample=True))
    return {"real": real, "samples": samples}


def shown(response: Any) -> set[str]:
    """Ids of the decision rows on a page or fragment."""
    assert response.status_code == 200, response.content
    text = response.content.decode()
    return {
        str(d.id) for d in RoutingDecision.objects.all() if f'id="d-{d.id}"' in text
    }


def test_a_sample_row_carries_the_badge_and_a_real_one_does_not(
    staff_client: Any, mixed: dict[str, list[RoutingDecision]]
) -> None:
    text = staff_client.get("/").content.decode()
    for sample in mixed["samples"]:
        row = text.split(f'id="d-{sample.id}"', 1)[1].split("</tr>", 1)[0]
        assert BADGE in row
    real = text.split(f'id="d-{mixed["real"][0].id}"', 1)[1].split("</tr>", 1)[0]
    assert BADGE not in real


def test_the_decision_page_of_a_sample_says_so(
    staff_client: Any, mixed: dict[str, list[RoutingDecision]]
) -> None:
    sample = staff_client.get(f"/decisions/{mixed['samples'][0].id}/")
    real = staff_client.get(f"/decisions/{mixed['real'][0].id}/")
    assert BADGE in sample.content.decode()
    assert BADGE not in real.content.decode()


@pytest.mark.parametrize(
    ("value", "kind"), [("true", "samples"), ("false", "real"), ("", None)]
)
def test_the_samples_filter_narrows_the_page_and_its_fragment(
    staff_client: Any,
    mixed: dict[str, list[RoutingDecision]],
    value: str,
    kind: str | None,
) -> None:
    expected = {
        str(d.id) for name, rows in mixed.items() if kind in (None, name) for d in rows
    }
    page = staff_client.get("/", {"sample": value})
    fragment = staff_client.get("/", {"sample": value}, headers={"HX-Request": "true"})
    assert shown(page) == expected
    assert shown(fragment) == expected
    assert "<html" not in fragment.content.decode()


def test_the_filter_form_offers_samples_and_keeps_the_choice(
    staff_client: Any, mixed: dict[str, list[RoutingDecision]]
) -> None:
    text = staff_client.get("/", {"sample": "false"}).content.decode()
    select = text.split('name="sample"', 1)[1].split("</select>", 1)[0]
    assert '<option value="false" selected>real only</option>' in select
    assert '<option value="true">samples only</option>' in select


def test_a_bad_samples_filter_is_a_400(
    staff_client: Any, mixed: dict[str, list[RoutingDecision]]
) -> None:
    response = staff_client.get("/", {"sample": "maybe"})
    assert response.status_code == 400
    assert "sample" in response.content.decode()


def test_the_live_feed_keeps_the_samples_filter(
    staff_client: Any, mixed: dict[str, list[RoutingDecision]]
) -> None:
    oldest = min(d.created_at for rows in mixed.values() for d in rows)
    after = (oldest - timedelta(seconds=1)).isoformat()
    response = staff_client.get(
        "/decisions/feed/",
        {"after": after, "sample": "false"},
        headers={"HX-Request": "true"},
    )
    assert shown(response) == {str(mixed["real"][0].id)}
