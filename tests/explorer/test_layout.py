"""What every page carries: a favicon link, no template comment leaking as text;
charts that scale to their card."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from routing.explorer.charts import budget_gauge

PAGES = [
    "explorer:decisions",
    "explorer:simulate",
    "explorer:backends",
    "explorer:spend",
    "explorer:config",
]


@pytest.mark.django_db
@pytest.mark.parametrize("name", PAGES)
def test_a_page_links_the_favicon_and_shows_no_template_comment(staff_client, name):
    html = staff_client.get(reverse(name)).content.decode()
    assert '<link rel="icon" href="/static/explorer/favicon.svg"' in html
    assert "{#" not in html and "#}" not in html


@pytest.mark.django_db
def test_the_login_page_shows_no_template_comment(client):
    html = client.get(reverse("login")).content.decode()
    assert "{#" not in html


def test_favicon_ico_redirects_to_the_svg_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/explorer/favicon.svg"
    assert finders.find("explorer/favicon.svg")


def test_the_projected_label_starts_at_the_gauge_when_it_sits_at_the_left_edge():
    svg = budget_gauge(
        spent=Decimal(0),
        reserved=Decimal(0),
        limit=Decimal(1000),
        soft_mark=Decimal(750),
        projected=Decimal("0.4"),
    )
    label = svg[svg.index("<text", svg.index('class="projection"')) :]
    assert 'text-anchor="start"' in label.split(">")[0]
    assert "projected $0.40" in label
