"""Backtests in the explorer: start one on a draft or today's configuration,
watch it (polling stops when it ends), cancel it, read its summary and its
changed decisions beside the recorded ones; the decision page's re-run
against an open draft; who may do what."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from routing.api.draft_changes import change_write
from routing.models import Backtest, BacktestChange, Draft, RoutingDecision
from routing.services.backtests import backtest_request, backtest_run
from routing.services.decision_templates import decision_view
from routing.services.drafts import DraftChange, draft_create, draft_discard
from tests.services.test_backtests import ask as route_and_record

pytestmark = pytest.mark.django_db

NEW = reverse("explorer:backtest-new")
FORMAT = "%Y-%m-%dT%H:%M"


def ask(model: str, *, tokens: int, privacy: str | None = None) -> None:
    route_and_record(
        model,
        tokens=tokens,
        privacy=privacy,
        output_tokens=50,
        request_id=f"r-{tokens}",
    )


@pytest.fixture
def traffic(fleet: Any) -> dict[str, int]:
    """Three restricted llama decisions (local-gpu) and two gpt-4o ones (cloud)."""
    for tokens in (100, 200, 300):
        ask("llama3.1:8b", tokens=tokens, privacy="restricted")
    for tokens in (400, 500):
        ask("gpt-4o", tokens=tokens)
    return {"restricted": 3, "total": 5}


def move_rack() -> Draft:
    """A draft moving the private local-gpu to the cloud zone."""
    return draft_create(
        name="move rack",
        changes=[
            DraftChange("backends", "update", "local-gpu", {"privacy_zone": "cloud"})
        ],
        actor="olivia",
        write=change_write,
    )


def window() -> dict[str, str]:
    now = timezone.now()
    return {
        "since": (now - timedelta(hours=1)).strftime(FORMAT),
        "until": (now + timedelta(minutes=2)).strftime(FORMAT),
    }


def queued(draft: Draft | None) -> Backtest:
    now = timezone.now()
    backtest, _ = backtest_request(
        draft_id=None if draft is None else draft.pk,
        since=now - timedelta(hours=1),
        until=now + timedelta(minutes=2),
        filters={},
        actor="olivia",
        enqueue=False,
    )
    return backtest


def finished(draft: Draft | None) -> Backtest:
    """A backtest run here, synchronously, by the service the task calls."""
    done = backtest_run(backtest_id=queued(draft).pk, write=change_write, workers=1)
    assert done is not None and done.status == "done", done and done.error
    return done


def page_of(backtest: Backtest) -> str:
    return reverse("explorer:backtest", args=[backtest.pk])


def change_url(backtest: Backtest, decision_id: Any) -> str:
    return reverse("explorer:backtest-change", args=[backtest.pk, decision_id])


def field_block(page: str, name: str) -> str:
    start = page.index(f'class="field field-{name}')
    return page[start : page.index("</div>", start)]


# --- who may do what ---------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login(client: Client, fleet: Any) -> None:
    backtest = queued(None)
    for url in (
        NEW,
        page_of(backtest),
        change_url(backtest, "00000000-0000-0000-0000-000000000000"),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    response = client.post(reverse("explorer:backtest-cancel", args=[backtest.pk]))
    assert response.status_code == 302
    assert Backtest.objects.get(pk=backtest.pk).status == "queued"


def test_a_login_without_staff_status_may_not_start_watch_or_cancel(
    viewer_client: Client, fleet: Any
) -> None:
    backtest = queued(None)
    assert viewer_client.get(NEW).status_code == 403
    assert viewer_client.post(NEW, window()).status_code == 403
    assert viewer_client.get(page_of(backtest)).status_code == 403
    cancel = reverse("explorer:backtest-cancel", args=[backtest.pk])
    assert viewer_client.post(cancel).status_code == 403
    assert Backtest.objects.count() == 1
    assert Backtest.objects.get().status == "queued"


# --- starting ----------------------------------------------------------------------


def test_a_drafts_page_offers_a_backtest_of_the_last_seven_days(
    staff_client: Client, fleet: Any
) -> None:
    draft = move_rack()
    page = staff_client.get(reverse("explorer:draft", args=[draft.pk])).content.decode()
    form = page[page.index('class="backtest-form"') :]
    form = form[: form.index("</form>")]
    assert f'name="draft" value="{draft.pk}"' in form
    since = re.search(r'name="since" value="([^"]+)"', form)
    until = re.search(r'name="until" value="([^"]+)"', form)
    assert since and until
    span = timezone.datetime.strptime(
        until.group(1), FORMAT
    ) - timezone.datetime.strptime(since.group(1), FORMAT)
    assert span == timedelta(days=7)
    assert f"on draft {draft.pk}" in form


def test_the_drafts_list_offers_a_backtest_of_todays_configuration(
    staff_client: Client, fleet: Any
) -> None:
    page = staff_client.get(reverse("explorer:drafts")).content.decode()
    form = page[page.index('class="backtest-form"') :]
    form = form[: form.index("</form>")]
    assert '<input type="hidden" name="draft" id="id_draft">' in form  # no draft
    assert "on today's configuration</button>" in form


def test_starting_a_backtest_queues_the_task_after_the_commit_and_opens_its_page(
    staff_client: Client, fleet: Any, django_capture_on_commit_callbacks: Any
) -> None:
    draft = move_rack()
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(
            NEW, {**window(), "draft": draft.pk, "model": "llama3.1:8b"}
        )
    backtest = Backtest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == page_of(backtest)
    assert len(callbacks) == 1  # backtest_enqueue, as the API's POST
    assert backtest.status == "queued"
    assert backtest.draft_id == draft.pk
    assert backtest.filters == {"model": "llama3.1:8b"}
    assert backtest.created_by == "olivia"


def test_starting_the_same_backtest_again_opens_the_running_one(
    staff_client: Client, fleet: Any, django_capture_on_commit_callbacks: Any
) -> None:
    draft = move_rack()
    data = {**window(), "draft": draft.pk}
    with django_capture_on_commit_callbacks() as callbacks:
        first = staff_client.post(NEW, data)
        second = staff_client.post(NEW, data)
    assert Backtest.objects.count() == 1
    assert first["Location"] == second["Location"] == page_of(Backtest.objects.get())
    assert len(callbacks) == 1


def test_a_window_that_ends_before_it_starts_is_refused_at_the_field(
    staff_client: Client, fleet: Any
) -> None:
    draft = move_rack()
    times = window()
    response = staff_client.post(
        NEW, {"since": times["until"], "until": times["since"], "draft": draft.pk}
    )
    assert response.status_code == 422
    assert "Must be after since." in field_block(response.content.decode(), "until")
    assert not Backtest.objects.exists()


def test_a_draft_that_is_no_longer_open_is_refused_with_the_apis_message(
    staff_client: Client, fleet: Any
) -> None:
    draft = move_rack()
    draft_discard(draft_id=draft.pk)
    response = staff_client.post(NEW, {**window(), "draft": draft.pk})
    assert response.status_code == 422
    page = response.content.decode()
    assert f"Draft {draft.pk} is discarded; only an open draft can be backtested." in (
        page.replace("&#x27;", "'")
    )
    assert not Backtest.objects.exists()


# --- watching and cancelling -------------------------------------------------------


def test_a_queued_backtest_polls_its_progress_every_second(
    staff_client: Client, fleet: Any
) -> None:
    backtest = queued(move_rack())
    page = staff_client.get(page_of(backtest)).content.decode()
    body = page[page.index('id="backtest-body"') :]
    assert 'hx-trigger="every 1s"' in body[: body.index(">")]
    assert '<progress id="backtest-bar" max="100" value="0"' in page
    assert f'href="{page_of(backtest)}">Refresh</a>' in page  # without JS
    fragment = staff_client.get(page_of(backtest), headers={"HX-Request": "true"})
    html = fragment.content.decode()
    assert html.lstrip().startswith('<section id="backtest-body"')
    assert "<html" not in html
    assert "Cancel backtest" in html


def test_a_running_backtest_shows_how_far_it_is(
    staff_client: Client, fleet: Any
) -> None:
    backtest = queued(None)
    Backtest.objects.filter(pk=backtest.pk).update(
        status="running", progress_done=250, progress_total=1000
    )
    html = staff_client.get(
        page_of(backtest), headers={"HX-Request": "true"}
    ).content.decode()
    assert 'value="25"' in html and "25%" in html
    assert "250 of 1,000 decisions" in html
    assert 'hx-trigger="every 1s"' in html


def test_polling_stops_when_the_backtest_is_done(
    staff_client: Client, traffic: Any
) -> None:
    backtest = finished(move_rack())
    html = staff_client.get(
        page_of(backtest), headers={"HX-Request": "true"}
    ).content.decode()
    assert html.lstrip().startswith('<section id="backtest-body"')
    assert 'hx-trigger="every' not in html
    assert 'value="100"' in html
    assert "Cancel backtest" not in html


def test_cancelling_a_queued_backtest_stops_it_and_its_polling(
    staff_client: Client, fleet: Any
) -> None:
    backtest = queued(move_rack())
    cancel = reverse("explorer:backtest-cancel", args=[backtest.pk])
    response = staff_client.post(cancel, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#backtest-body"
    html = response.content.decode()
    assert "Cancelled" in html and 'hx-trigger="every' not in html
    assert Backtest.objects.get(pk=backtest.pk).status == "cancelled"
    # Without JS: back to the page.
    again = queued(move_rack())
    response = staff_client.post(reverse("explorer:backtest-cancel", args=[again.pk]))
    assert response.status_code == 302 and response["Location"] == page_of(again)
    assert Backtest.objects.get(pk=again.pk).status == "cancelled"


def test_a_failed_backtest_shows_its_error(staff_client: Client, fleet: Any) -> None:
    backtest = queued(None)
    Backtest.objects.filter(pk=backtest.pk).update(
        status="failed", error="Draft 9 no longer applies to today's configuration"
    )
    page = staff_client.get(page_of(backtest)).content.decode()
    assert "The backtest failed." in page
    assert "no longer applies" in page
    assert 'hx-trigger="every' not in page


def test_an_unknown_backtest_is_a_404(staff_client: Client, fleet: Any) -> None:
    assert staff_client.get(reverse("explorer:backtest", args=[999])).status_code == 404


# --- the summary and the changed decisions -----------------------------------------


def test_the_summary_shows_real_numbers_and_charts_without_javascript(
    staff_client: Client, traffic: dict[str, int]
) -> None:
    backtest = finished(move_rack())
    page = staff_client.get(page_of(backtest)).content.decode()
    assert f'id="summary-total">{traffic["total"]}<' in page
    assert f'id="summary-changed">{traffic["restricted"]}<' in page
    unchanged = traffic["total"] - traffic["restricted"]
    assert f'id="summary-unchanged">{unchanged}<' in page
    assert 'id="summary-privacy-violations">0 ' in page
    assert 'id="summary-tier-downgrades">0<' in page
    assert 'id="summary-approximate">0 ' in page
    for chart in ("outcome-shift", "cost-shift", "backend-shift"):
        assert f'<svg class="chart {chart}"' in page
    assert "route → reject" in page  # the outcome shift's bar
    assert "local-gpu → (none)" in page  # the backend shift's bar
    newly = page[page.index('class="grid compact newly-rejected"') :]
    assert "<td>privacy</td>" in newly[: newly.index("</table>")]


def test_the_changed_decisions_are_listed_and_filtered_like_the_api(
    staff_client: Client, traffic: dict[str, int]
) -> None:
    backtest = finished(move_rack())
    page = staff_client.get(page_of(backtest)).content.decode()
    assert page.count('class="change-row"') == traffic["restricted"]
    for change in BacktestChange.objects.filter(backtest=backtest):
        assert f'href="{change_url(backtest, change.decision_id)}"' in page
    htmx = {"HX-Request": "true"}
    html = staff_client.get(
        page_of(backtest), {"outcome_change": "route->queue"}, headers=htmx
    ).content.decode()
    assert html.lstrip().startswith('<section class="card" id="changes"')
    assert 'class="change-row"' not in html and "match these filters" in html
    html = staff_client.get(
        page_of(backtest), {"backend": "local-gpu"}, headers=htmx
    ).content.decode()
    assert html.count('class="change-row"') == traffic["restricted"]
    html = staff_client.get(
        page_of(backtest), {"backend": "cloud-gpt"}
    ).content.decode()
    assert 'class="change-row"' not in html
    bad = staff_client.get(page_of(backtest), {"outcome_change": "route->maybe"})
    assert bad.status_code == 400


def test_changed_decisions_come_a_page_at_a_time(
    staff_client: Client, traffic: dict[str, int], monkeypatch: Any
) -> None:
    from routing.explorer.views import backtests

    monkeypatch.setattr(backtests, "PAGE_SIZE", 2)
    backtest = finished(move_rack())
    page = staff_client.get(page_of(backtest)).content.decode()
    assert page.count('class="change-row"') == 2
    link = re.search(r'<tr class="pager">.*?href="([^"]+)"', page, re.S)
    assert link
    url = link.group(1).replace("&amp;", "&")
    rest = staff_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert rest.count('class="change-row"') == 1
    assert "<section" not in rest  # just the rows, for the pager's row
    shown = set(re.findall(r'id="change-([0-9a-f-]{36})"', page + rest))
    expected = {
        str(d) for d in BacktestChange.objects.values_list("decision_id", flat=True)
    }
    assert shown == expected


def test_a_changed_decision_opens_before_and_after_side_by_side(
    staff_client: Client, traffic: dict[str, int]
) -> None:
    backtest = finished(move_rack())
    change = BacktestChange.objects.filter(backtest=backtest).first()
    assert change is not None
    page = staff_client.get(change_url(backtest, change.decision_id)).content.decode()
    before = page[page.index('<section class="before">') :]
    before = before[: before.index('<section class="after">')]
    assert "Trace" in before and "local-gpu" in before  # the decision page's body
    assert '<span class="badge route">route</span>' in before
    after = page[page.index('<section class="after">') :]
    assert '<span class="badge reject">reject</span>' in after
    assert 'class="grid compact replay-rejections"' in after
    assert "privacy" in after
    assert f"?draft={backtest.draft_id}" in after  # the full re-run, with its trace
    fragment = staff_client.get(
        change_url(backtest, change.decision_id), headers={"HX-Request": "true"}
    ).content.decode()
    assert fragment.lstrip().startswith('<section class="side-by-side"')


def test_a_decision_that_did_not_change_has_no_before_and_after(
    staff_client: Client, traffic: dict[str, int]
) -> None:
    backtest = finished(move_rack())
    unchanged = RoutingDecision.objects.filter(model="gpt-4o").first()
    assert unchanged is not None
    response = staff_client.get(change_url(backtest, unchanged.pk))
    assert response.status_code == 404


# --- the decision page's re-run against a draft ------------------------------------


def restricted_decision() -> RoutingDecision:
    decision = next(
        (
            d
            for d in RoutingDecision.objects.filter(outcome="route")
            if decision_view(d)["constraints"]["privacy"]["value"] == "restricted"
        ),
        None,
    )
    assert decision is not None
    return decision


def test_staff_see_the_open_drafts_to_re_run_against(
    staff_client: Client, traffic: Any
) -> None:
    draft = move_rack()
    url = reverse("explorer:decision", args=[restricted_decision().pk])
    page = staff_client.get(url).content.decode()
    assert f'<option value="{draft.pk}">Draft {draft.pk}: move rack</option>' in page
    draft_discard(draft_id=draft.pk)
    assert 'class="rerun-draft"' not in staff_client.get(url).content.decode()


def test_a_login_without_staff_status_sees_no_drafts_to_re_run_against(
    viewer_client: Client, traffic: Any
) -> None:
    move_rack()
    url = reverse("explorer:decision", args=[restricted_decision().pk])
    assert 'class="rerun-draft"' not in viewer_client.get(url).content.decode()


def test_a_decision_re_runs_against_an_open_draft_and_nothing_is_recorded(
    staff_client: Client, traffic: Any
) -> None:
    draft = move_rack()
    decision = restricted_decision()
    count = RoutingDecision.objects.count()
    url = reverse("explorer:decision-rerun", args=[decision.pk])
    response = staff_client.get(
        url, {"draft": draft.pk}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="rerun">')
    assert f"draft {draft.pk}: move rack" in html
    outcome_changes = html[html.index('class="rerun-part outcome-changes"') :]
    assert "reject" in outcome_changes[: outcome_changes.index("</section>")]
    # The decision recorded the constraints its request stated: an exact replay.
    assert "Approximate" not in html
    assert RoutingDecision.objects.count() == count
    assert not Backtest.objects.exists()
    # Today's configuration still routes it as recorded.
    plain = staff_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "Nothing would change" in plain


def test_the_re_run_against_a_draft_is_for_staff(
    viewer_client: Client, traffic: Any
) -> None:
    draft = move_rack()
    url = reverse("explorer:decision-rerun", args=[restricted_decision().pk])
    assert viewer_client.get(url, {"draft": draft.pk}).status_code == 403
    assert viewer_client.get(url).status_code == 200


def test_a_re_run_against_a_discarded_draft_says_why_not(
    staff_client: Client, traffic: Any
) -> None:
    draft = move_rack()
    draft_discard(draft_id=draft.pk)
    url = reverse("explorer:decision-rerun", args=[restricted_decision().pk])
    response = staff_client.get(
        url, {"draft": draft.pk}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 400
    assert f"Draft {draft.pk} is discarded; it cannot be replayed." in (
        response.content.decode()
    )


def test_the_drafts_list_shows_recent_backtests_once_and_keeps_its_title_plain(
    staff_client: Client, fleet: Any
) -> None:
    queued(None)
    page = staff_client.get(reverse("explorer:drafts")).content.decode()
    title = page[page.index("<title>") : page.index("</title>")]
    assert title == "<title>Drafts · Nexus explorer"
    assert page.count('id="recent-backtests"') == 1
