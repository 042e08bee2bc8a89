"""The explorer shows what the proxy learned: a decision's upstream attempts and
real usage, and each backend's requests in flight and circuit state."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from routing.models import Backend, RoutingDecision, UsageReport
from routing.services.passive_health import HALF_OPEN, in_flight_start
from tests.factories import RoutingDecisionFactory, proxy_attempts

pytestmark = pytest.mark.django_db

ATTEMPTS = proxy_attempts(served_ttft_ms=95.25)


def proxied() -> RoutingDecision:
    decision = RoutingDecisionFactory(
        backend_name="local-gpu",
        estimated_cost_usd=Decimal("0.004"),
        attempts=ATTEMPTS,
    )
    UsageReport.objects.create(
        decision_id=decision.pk,
        input_tokens=1234,
        output_tokens=56,
        cost_usd=Decimal("0.0026"),
        source="upstream",
    )
    return decision


def decision_page(client, decision: RoutingDecision) -> str:  # type: ignore[no-untyped-def]
    response = client.get(reverse("explorer:decision", args=[decision.id]))
    assert response.status_code == 200
    return response.content.decode()


def attempt_items(html: str) -> list[str]:
    """The attempt steps of the timeline, in order."""
    part = html[html.index('<ol class="timeline attempts">') :]
    part = part[: part.index("</ol>")]
    return part.split('<li class="step attempt')[1:]


def backend_cells(html: str, name: str) -> str:
    row = html[html.index(f'id="backend-{name}"') :]
    return row[: row.index("</tr>")]


def test_the_decision_timeline_lists_each_upstream_attempt_in_order(staff_client):
    items = attempt_items(decision_page(staff_client, proxied()))
    assert len(items) == 2
    failed, served = items
    assert failed.startswith(" failed")
    assert "cloud-llama" in failed and "failed_over" in failed
    assert "HTTP status 503" in failed and "TTFT 10.3 ms" in failed
    assert "duration 12.5 ms" in failed and "error: HTTP 503" in failed
    assert "the next backend was tried" in failed
    assert not served.startswith(" failed")
    assert "local-gpu" in served and ">ok<" in served
    assert "HTTP status 200" in served and "TTFT 95.3 ms" in served
    assert "duration 812 ms" in served and "error:" not in served


def test_the_decision_shows_real_usage_beside_the_estimate(staff_client):
    html = decision_page(staff_client, proxied())
    summary = html[html.index("<dt>Estimated cost</dt>") :]
    summary = summary[: summary.index("</dl>")]
    assert "$0.004" in summary
    assert "Real cost" in summary and "$0.0026" in summary
    assert "from the upstream&#x27;s answer" in summary
    assert "1,234 / 56" in summary


def test_estimated_usage_is_marked_as_estimated(staff_client):
    decision = RoutingDecisionFactory()
    UsageReport.objects.create(
        decision_id=decision.pk,
        input_tokens=7,
        output_tokens=8,
        cost_usd=Decimal(0),
        source="estimated",
    )
    html = decision_page(staff_client, decision)
    assert "estimated from the characters sent and received" in html


def test_a_decision_only_call_shows_no_attempts_and_no_real_cost(staff_client):
    html = decision_page(staff_client, RoutingDecisionFactory())
    assert "Upstream attempts" not in html
    assert "Real cost" not in html


def test_the_backends_page_shows_requests_in_flight_per_backend(staff_client, fleet):
    for n in range(2):
        in_flight_start("local-gpu", f"t{n}")
    html = staff_client.get(reverse("explorer:backends")).content.decode()
    assert 'class="num in-flight">2<' in backend_cells(html, "local-gpu")
    assert 'class="num in-flight">0<' in backend_cells(html, "cloud-gpt")


def test_the_refreshed_table_fragment_carries_the_live_figures(staff_client, fleet):
    for n in range(3):
        in_flight_start("cloud-gpt", f"t{n}")
    part = staff_client.get(
        reverse("explorer:backends"), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert part.strip().startswith('<table class="grid backends" id="backends">')
    assert 'class="num in-flight">3<' in backend_cells(part, "cloud-gpt")


def test_an_open_circuit_shows_until_when_and_why(staff_client, fleet):
    until = (timezone.now() + timedelta(seconds=30)).replace(microsecond=0)
    reason = (
        "circuit open after 3 failed requests in a row; one trial request "
        f"after {until:%H:%M:%S} UTC"
    )
    Backend.objects.filter(name="cloud-llama").update(
        health="unhealthy", health_reason=reason, unhealthy_until=until
    )
    html = staff_client.get(reverse("explorer:backends")).content.decode()
    cells = backend_cells(html, "cloud-llama")
    assert "circuit-open" in cells
    assert f"<strong>open</strong> until {until:%H:%M:%S} UTC" in cells
    assert reason in cells
    assert "circuit-closed" in backend_cells(html, "local-gpu")


def test_a_circuit_whose_cool_down_ended_says_the_next_request_half_opens_it(
    staff_client, fleet
):
    ended = timezone.now() - timedelta(seconds=5)
    Backend.objects.filter(name="cloud-llama").update(
        health="unhealthy",
        health_reason="the upstream answered 429",
        unhealthy_until=ended,
    )
    html = staff_client.get(reverse("explorer:backends")).content.decode()
    cells = backend_cells(html, "cloud-llama")
    assert "circuit-cooled" in cells and "half-opens on the next request" in cells
    assert f"{ended:%H:%M:%S} UTC" in cells


def test_a_half_open_circuit_is_named(staff_client, fleet):
    Backend.objects.filter(name="cloud-gpt").update(
        health="unknown", health_reason=HALF_OPEN
    )
    html = staff_client.get(reverse("explorer:backends")).content.decode()
    assert "half-open: one trial request" in backend_cells(html, "cloud-gpt")


def test_a_row_swapped_back_after_an_edit_keeps_its_live_figures(staff_client, fleet):
    in_flight_start("local-gpu", "t0")
    part = staff_client.get(
        reverse("explorer:backend-row", args=["local-gpu"]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert part.strip().startswith('<tr id="backend-local-gpu"')
    assert 'class="num in-flight">1<' in part
