"""The Spend page: spend per day stacked by model, client or backend, top
spenders, estimates against real cost, and each budget's gauge, forecast and alerts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from routing.models import Budget, BudgetAlert
from routing.services.budgets import budget_spend_recount
from routing.services.config import config_save
from tests.factories import UsageReportFactory

pytestmark = pytest.mark.django_db

SPEND = reverse("explorer:spend")


def days_ago(n: int) -> datetime:
    """Noon UTC ``n`` days ago."""
    day = timezone.now().date() - timedelta(days=n)
    return datetime.combine(day, time(12), tzinfo=UTC)


def usage(
    *,
    when: datetime,
    client: str = "team-a-app",
    model: str = "gpt-4o",
    backend: str = "cloud-gpt",
    cost: str = "0.0120",
    estimated: str = "0.0100",
) -> None:
    UsageReportFactory(
        created_at=when,
        cost_usd=Decimal(cost),
        decision__client=client,
        decision__model=model,
        decision__backend_name=backend,
        decision__estimated_cost_usd=Decimal(estimated),
    )


@pytest.fixture
def traffic(fleet):  # type: ignore[no-untyped-def]
    """Two days of usage: gpt-4o for team-a on cloud, llama for batch on local."""
    usage(when=days_ago(2), cost="1.50", estimated="1.00")
    usage(
        when=days_ago(2),
        client="batch",
        model="llama3.1:8b",
        backend="local-gpu",
        cost="0.25",
        estimated="0.25",
    )
    usage(when=days_ago(0), cost="2.00", estimated="2.50")
    return fleet


def window_of(html: str) -> str:
    return html[
        html.index('<section id="window">') : html.index('<section id="budgets">')
    ]


def test_the_page_charts_recorded_usage_per_day_stacked_by_model(staff_client, traffic):
    response = staff_client.get(SPEND)
    assert response.status_code == 200
    html = response.content.decode()
    window = window_of(html)
    assert 'class="chart spend-chart"' in window
    two_days_ago = (timezone.now().date() - timedelta(days=2)).isoformat()
    assert f"<title>{two_days_ago} gpt-4o: $1.50</title>" in window
    assert f"<title>{two_days_ago} llama3.1:8b: $0.25</title>" in window
    assert f"<title>{two_days_ago} total: $1.75</title>" in window
    assert "$3.75 over 3 requests" in window
    # Thirty days by default, both ends included.
    first = (timezone.now().date() - timedelta(days=29)).isoformat()
    assert f"{first} → {timezone.now().date().isoformat()}" in window


def test_the_top_tables_list_cost_requests_tokens_and_estimates(staff_client, traffic):
    window = window_of(staff_client.get(SPEND).content.decode())
    clients = window[window.index('class="card top-client"') :]
    clients = clients[: clients.index("</table>")]
    rows = re.findall(r"<tr><td>([^<]+)</td>((?:<td[^>]*>[^<]*</td>)+)</tr>", clients)
    assert [name for name, _ in rows] == ["team-a-app", "batch"]
    cells = re.findall(r">([^<]*)</td>", rows[0][1])
    assert cells == ["$3.50", "2", "1000", "400", "$3.50"]
    assert "cloud-gpt" in window and "local-gpu" in window  # top backends


def test_estimates_are_compared_with_the_real_cost_of_the_same_usages(
    staff_client, traffic
):
    window = window_of(staff_client.get(SPEND).content.decode())
    accuracy = window[window.index('class="card accuracy"') :]
    # Estimated 1.00 + 0.25 + 2.50 = 3.75 against real 3.75 overall: 0 %;
    # two days ago 1.25 against 1.75: -28.6 %; today 2.50 against 2.00: +25 %.
    assert "Estimates $3.75, real $3.75" in accuracy
    assert '<strong class="error-percent">0.0%</strong>' in accuracy
    assert "-28.6%" in accuracy and "25.0%" in accuracy
    assert 'class="bar-estimated"' in accuracy and 'class="bar-real"' in accuracy


def test_the_stack_links_switch_to_clients_as_an_htmx_fragment(staff_client, traffic):
    html = staff_client.get(SPEND).content.decode()
    link = re.search(r'<a href="([^"]*stack=client[^"]*)" hx-get="([^"]*)"', html)
    assert link and link.group(1) == link.group(2)
    response = staff_client.get(
        link.group(1).replace("&amp;", "&"), HTTP_HX_REQUEST="true"
    )
    part = response.content.decode()
    assert response.status_code == 200
    assert part.strip().startswith('<section id="window">') and "<html" not in part
    two_days_ago = (timezone.now().date() - timedelta(days=2)).isoformat()
    assert f"<title>{two_days_ago} batch: $0.25</title>" in part
    assert 'aria-current="true" class="current">client</a>' in part


def test_the_stack_keeps_the_window_and_works_without_javascript(staff_client, traffic):
    html = staff_client.get(SPEND + "?days=2&stack=backend").content.decode()
    window = window_of(html)
    today = timezone.now().date().isoformat()
    assert f"<title>{today} cloud-gpt: $2.00</title>" in window
    assert "llama3.1:8b" not in window  # two days ago is outside a 2-day window
    assert f'href="{SPEND}?days=2&amp;stack=model"' in window


def test_only_the_top_ten_are_stacked_and_the_rest_is_other(staff_client, fleet):
    for i in range(12):
        usage(when=days_ago(1), model=f"model-{i:02d}", cost=str(12 - i))
    window = window_of(staff_client.get(SPEND).content.decode())
    stacked = set(re.findall(r"<title>[0-9-]+ (model-\d+|other): ", window))
    assert stacked == {f"model-{i:02d}" for i in range(10)} | {"other"}
    assert re.search(r"<title>[0-9-]+ other: \$3\.00</title>", window)  # 2 + 1


@pytest.mark.parametrize(
    "query",
    [
        "?days=abc",
        "?days=0",
        "?days=1000",
        "?since=2026-05-10&until=2026-05-01",
        "?since=not-a-date",
        "?since=2020-01-01&until=2026-01-01",
        "?days=7&since=2026-05-01",
        "?stack=zone",
    ],
)
def test_a_bad_window_is_a_400_with_an_inline_error(staff_client, query):
    response = staff_client.get(SPEND + query)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="errors window-errors"' in html
    assert '<section id="budgets">' in html  # the rest of the page is still there
    part = staff_client.get(SPEND + query, HTTP_HX_REQUEST="true")
    assert part.status_code == 400
    assert 'class="errors window-errors"' in part.content.decode()


def test_the_old_budget_address_redirects_to_spend(staff_client):
    response = staff_client.get("/budget/?days=7")
    assert response.status_code == 302
    assert response["Location"] == f"{SPEND}?days=7"


def test_each_budget_shows_its_gauge_scope_forecast_and_alerts(staff_client, traffic):
    team = Budget(
        name="team-a",
        monthly_limit_usd=Decimal("10"),
        scope={"clients": ["team-a-app", "team-a-batch"], "zones": ["cloud"]},
    )
    config_save(instance=team, actor="test")
    team.refresh_from_db()
    BudgetAlert.objects.create(
        budget=team,
        period_start=team.period_start,
        period_end=team.period_end,
        threshold_percent=80,
        spent_usd=Decimal("8.1"),
        reserved_usd=Decimal(0),
        limit_usd=Decimal("10"),
        status="failed",
        http_status=503,
    )
    html = staff_client.get(SPEND).content.decode()
    card = html[html.index('id="budget-team-a"') :]
    card = card[: card.index("</section>")]
    assert (
        "Governs <strong>requests from clients team-a-app or team-a-batch, "
        "on backends in zone cloud</strong>" in card
    )
    assert 'class="hard-mark"' in card and 'class="soft-mark"' in card
    assert 'class="burn-rate"' in card and 'class="exhausted-on"' in card
    assert "80% of $10.00" in card and "failed (HTTP 503)" in card
    # The global budget governs everything and tracks it without a limit.
    global_card = html[html.index('id="budget-global"') :]
    assert "Governs <strong>everything</strong>" in global_card


def test_a_budgets_spend_is_the_usage_it_governs_this_period(staff_client, traffic):
    team = Budget(name="team-a", scope={"models": ["gpt-*"]})
    config_save(instance=team, actor="test")
    team.refresh_from_db()
    start = team.period_start
    expected = Decimal("2.00") + (Decimal("1.50") if days_ago(2).date() >= start else 0)
    assert team.spent_usd == expected
    assert budget_spend_recount(budget_id=team.pk) == expected
    html = staff_client.get(SPEND).content.decode()
    card = html[html.index('id="budget-team-a"') :]
    assert f'<dd class="spent">${expected:.2f}</dd>' in card
