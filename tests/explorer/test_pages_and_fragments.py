"""Every page needs a login; htmx gets a fragment of the same template; Vary is set."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.explorer.conftest import record

pytestmark = pytest.mark.django_db

PAGES = [
    "explorer:decisions",
    "explorer:simulate",
    "explorer:backends",
    "explorer:spend",
    "explorer:config",
]


@pytest.mark.parametrize("name", PAGES)
def test_a_page_redirects_an_anonymous_visitor_to_the_login(client, name):
    """No session: 302 to /login/?next=..."""
    url = reverse(name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


def test_decision_detail_and_feed_also_need_a_login(client, fleet):
    decision = record("gpt-4o")
    for url in (
        reverse("explorer:decision", args=[decision.id]),
        reverse("explorer:decision-rerun", args=[decision.id]),
        reverse("explorer:decision-feed") + "?after=2020-01-01T00:00:00Z",
    ):
        assert client.get(url).status_code == 302


def test_the_login_page_logs_an_operator_in(client, operator):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    response = client.post(
        reverse("login"), {"username": "olivia", "password": "pw-olivia"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("explorer:decisions")


@pytest.mark.parametrize("name", PAGES)
def test_a_page_renders_in_full_with_vary_on_hx_request(staff_client, name):
    response = staff_client.get(reverse(name))
    assert response.status_code == 200
    assert "HX-Request" in response["Vary"]
    html = response.content.decode()
    assert "<html" in html
    assert 'hx-headers=\'{"x-csrftoken"' in html
    assert "htmx" in html and "django_htmx" in html  # the vendored script


def test_an_htmx_request_gets_only_the_results_fragment(staff_client, fleet):
    record("gpt-4o")
    full = staff_client.get(reverse("explorer:decisions")).content.decode()
    part = staff_client.get(
        reverse("explorer:decisions"), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "<html" in full and "<html" not in part
    assert part.strip().startswith('<section id="results">')
    # The fragment is the same markup the page embeds.
    assert part.strip() in full


def test_every_hx_get_link_has_a_real_href(staff_client, fleet):
    for _ in range(3):
        record("gpt-4o")
    decision = record("claude-x")
    for url in (
        reverse("explorer:decisions") + "?outcome=route",
        reverse("explorer:decision", args=[decision.id]),
        reverse("explorer:backends"),
        reverse("explorer:spend"),
        reverse("explorer:budget-new"),
        reverse("explorer:budget-edit", args=["global"]),
    ):
        html = staff_client.get(url).content.decode()
        for tag in re.findall(r"<a [^>]*hx-get=[^>]*>", html):
            assert 'href="' in tag, tag


def test_the_spend_page_draws_the_budget_gauge_with_soft_and_hard_marks(
    staff_client, fleet
):
    from tests.fleet_rows import set_budget

    set_budget("100")
    html = staff_client.get(reverse("explorer:spend")).content.decode()
    assert "<svg" in html
    assert 'class="soft-mark"' in html and 'class="hard-mark"' in html
    assert 'class="projection"' in html
    assert "Resets on" in html and "Reserved" in html
    assert 'hx-trigger="load"' in html  # the outcomes chart loads lazily


def test_the_outcomes_panel_charts_decisions_by_outcome(staff_client, fleet):
    record("gpt-4o")
    record("nope-model")
    html = staff_client.get(reverse("explorer:spend-outcomes")).content.decode()
    assert 'class="bar-route"' in html and 'class="bar-reject"' in html


def test_the_configuration_history_links_to_decisions_of_each_version(
    staff_client, fleet
):
    html = staff_client.get(
        reverse("explorer:config") + "?object_type=backend"
    ).content.decode()
    assert "local-gpu" in html
    assert "?config_version=" in html


def test_a_bad_configuration_filter_is_a_400(staff_client):
    response = staff_client.get(reverse("explorer:config") + "?version=-1")
    assert response.status_code == 400
