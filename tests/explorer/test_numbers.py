"""One rule for money, scores, latencies and rates, used by every page and the admin."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from routing.explorer.numbers import duration_us, milliseconds, money, number, percent
from routing.models import Backend, Budget, RoutingDecision
from routing.services.decision_templates import decision_view
from tests.explorer.conftest import record


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0, "$0.00"),
        (Decimal("0E-8"), "$0.00"),
        (0.0000004, "$0.0000004"),
        (Decimal("0.00000044"), "$0.00000044"),
        (0.0026, "$0.0026"),
        (Decimal("0.002600"), "$0.0026"),
        (0.00263, "$0.0026"),
        (0.05, "$0.05"),
        (0.5, "$0.50"),
        (0.996, "$1.00"),
        (1, "$1.00"),
        (12.4, "$12.40"),
        (1234.5, "$1,234.50"),
        (Decimal("1234567.891"), "$1,234,567.89"),
        (-0.0026, "-$0.0026"),
        (-12.4, "-$12.40"),
        ("0.0026", "$0.0026"),
        (None, "—"),
        ("", "—"),
    ],
)
def test_money_shows_two_significant_digits_below_a_dollar_and_cents_above(
    amount, shown
):
    assert money(amount) == shown


def test_money_never_rounds_a_non_zero_amount_to_zero():
    for exponent in range(1, 12):
        amount = Decimal(1).scaleb(-exponent) * 3
        assert re.search(r"[1-9]", money(amount)), amount


def test_a_value_that_is_not_a_number_is_shown_as_it_is():
    assert money("n/a") == "n/a"
    assert number("fast") == "fast"
    assert number(float("nan")) == "nan"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0"),
        (0.0, "0"),
        (0.82345, "0.823"),
        (0.8, "0.8"),
        (1.0, "1"),
        (12.345, "12.3"),
        (123.45, "123"),
        (1234.5, "1,235"),
        (0.0000004, "0.0000004"),
        (-3.14159, "-3.14"),
        (None, "—"),
    ],
)
def test_scores_and_latencies_keep_three_significant_digits(value, shown):
    assert number(value) == shown


def test_durations_latencies_and_rates_carry_their_unit():
    assert duration_us(4.5678) == "4.57 µs"
    assert duration_us(812.3) == "812 µs"
    assert duration_us(1234.5) == "1.23 ms"
    assert duration_us(None) == "—"
    assert milliseconds(12.3456) == "12.3 ms"
    assert milliseconds(None) == "—"
    assert percent(0.0123) == "1.23%"
    assert percent(0.004) == "0.4%"
    assert percent(0) == "0%"


# -- the pages ------------------------------------------------------------------

#: ``$0`` or ``$0.000``...: how a non-zero amount used to look. Zero itself is ``$0.00``.
ZERO_AMOUNT = re.compile(r"\$0(?![.\d])|\$0\.0{3,}(?!\d)")


def _amounts(html: str) -> list[str]:
    return re.findall(r"-?\$[\d,]+(?:\.\d+)?", html)


@pytest.mark.django_db
def test_the_decision_list_and_page_show_a_tiny_cost_with_its_digits(
    staff_client, fleet
):
    decision = record("llama3.1:8b", privacy="unrestricted", request_id="tiny")
    assert decision.backend_name == "cloud-llama"
    # Recorded costs keep 6 decimals; a candidate's estimate (JSON) keeps more.
    # Written back in the full form: the page reads rows of either form.
    view = decision_view(decision)
    view["annotations"]["estimated_cost_usd"] = {"cloud-llama": 4e-7}
    RoutingDecision.objects.filter(pk=decision.pk).update(
        estimated_cost_usd=Decimal("0.000026"), **view
    )
    listing = staff_client.get(reverse("explorer:decisions")).content.decode()
    assert "$0.000026" in listing
    page = staff_client.get(
        reverse("explorer:decision", args=[decision.pk])
    ).content.decode()
    assert "$0.000026" in page
    assert "$0.0000004" in page
    for html in (listing, page):
        assert not ZERO_AMOUNT.search(html), _amounts(html)


@pytest.mark.django_db
def test_the_decision_page_writes_scores_and_durations_with_three_digits(
    staff_client, fleet
):
    decision = record("llama3.1:8b", privacy="unrestricted", request_id="scored")
    # Written back in the full form: the page reads rows of either form.
    view = decision_view(decision)
    annotations = {
        **view["annotations"],
        "scores": {"cloud-llama": 0.823456, "local-gpu": 0.0123456},
        "score_breakdown": {"cloud-llama": {"latency": 0.456789}},
        "scorer_weights": {"latency": 0.2},
    }
    trace = [{**entry, "duration_us": 4.56789} for entry in view["trace"]]
    RoutingDecision.objects.filter(pk=decision.pk).update(
        **{**view, "annotations": annotations, "trace": trace},
        pipeline_duration_us=1234.5678,
    )
    html = staff_client.get(
        reverse("explorer:decision", args=[decision.pk])
    ).content.decode()
    assert '<td class="num">0.823</td>' in html
    assert '<td class="num">0.0123</td>' in html
    assert "latency 0.457" in html
    assert 'latency 0.457 <span class="muted" title="weight">×0.2</span>' in html
    assert "Pipeline time</dt><dd>1.23 ms</dd>" in html
    assert "4.57 µs" in html
    assert "0.823456" not in html.split("All annotations")[0]


@pytest.mark.django_db
def test_the_page_title_and_heading_name_the_same_decision_id(staff_client, fleet):
    decision = record("llama3.1:8b", request_id="req-title")
    html = staff_client.get(
        reverse("explorer:decision", args=[decision.pk])
    ).content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    heading = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert title and heading
    assert str(decision.pk) in title.group(1)
    assert str(decision.pk) in heading.group(1)


@pytest.mark.django_db
def test_the_simulator_shows_costs_with_their_digits(staff_client, fleet):
    html = staff_client.get(
        reverse("explorer:simulate"),
        {
            "model": "llama3.1:8b",
            "input_tokens": 3,
            "output_tokens": 1,
            "privacy": "unrestricted",
        },
    ).content.decode()
    assert "summary" in html
    amounts = _amounts(html)
    assert amounts
    assert "$0.000005" in html  # cloud-llama: 3 x $0.001/1k + 1 x $0.002/1k
    assert not ZERO_AMOUNT.search(html), amounts


@pytest.mark.django_db
def test_the_spend_page_shows_a_small_budget_spend_with_its_digits(staff_client):
    Budget.objects.filter(name="global").update(
        monthly_limit_usd=Decimal("1234.5"),
        spent_usd=Decimal("0.0026"),
        reserved_usd=Decimal("0.000004"),
    )
    html = staff_client.get(reverse("explorer:spend")).content.decode()
    html = html[html.index('id="budget-global"') :]
    assert "$0.0026" in html and "$0.000004" in html and "$1,234.50" in html
    assert "$0.00<" not in html and "$0.00 " not in html


@pytest.mark.django_db
def test_the_backends_page_shows_latency_and_error_rate_with_their_digits(
    staff_client, fleet
):
    Backend.objects.filter(name="cloud-llama").update(
        latency_ema_ms=12.3456, error_rate=0.004
    )
    html = staff_client.get(reverse("explorer:backends")).content.decode()
    row = html[html.index('id="backend-cloud-llama"') :]
    row = row[: row.index("</tr>")]
    assert "12.3 ms" in row
    assert "0.4%" in row


@pytest.mark.django_db
def test_the_admin_lists_amounts_by_the_same_rule(admin_client_as_operator):
    Budget.objects.filter(name="global").update(
        monthly_limit_usd=Decimal("1234.5"), spent_usd=Decimal("0.0026")
    )
    html = admin_client_as_operator.get("/admin/routing/budget/").content.decode()
    assert "$1,234.50" in html
    assert "$0.0026" in html
