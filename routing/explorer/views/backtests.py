"""Backtests in the explorer: start one on a draft (or today's configuration),
watch its progress, cancel it, read its summary as charts and its changed
decisions, each beside the recorded decision.

Staff only, as the backtests API (``DraftPermission``). Starting calls the
same service as ``POST /api/v1/backtests/`` (the same messages, one running
replay per identical request); the page polls its ``body`` fragment every
second while the backtest is queued or running, and not after.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from routing.errors import NexusError
from routing.explorer.charts import backend_shift, cost_before_after, outcome_shift
from routing.explorer.forms import BacktestChangeFilterForm, BacktestForm
from routing.explorer.http import ExplorerRequest, is_partial, render_explorer
from routing.explorer.views.detail import decision_context
from routing.explorer_selectors import decision_get
from routing.models import ACTIVE_STATUSES, Backtest, BacktestChange, Draft, DraftStatus
from routing.selectors import backtest_change_page, backtest_list
from routing.selectors import draft_list as drafts_newest_first
from routing.services.backtests import backtest_cancel, backtest_request

from .drafts import staff_only

NEW = "explorer/backtests/new.html"
DETAIL = "explorer/backtests/detail.html"
CHANGE = "explorer/backtests/change.html"
#: Changed decisions per page.
PAGE_SIZE = 50
#: How often the page asks for progress while the backtest is active.
POLL_SECONDS = 1


def _backtest(backtest_id: int) -> Backtest:
    backtest = backtest_list().filter(pk=backtest_id).first()
    if backtest is None:
        raise Http404("No such backtest.")
    return backtest


def _draft_or_none(draft_id: int | None) -> Draft | None:
    """The draft (any status), None when there is none."""
    if draft_id is None:
        return None
    return drafts_newest_first().filter(pk=draft_id).first()


def _new_response(
    request: ExplorerRequest, form: BacktestForm, draft: Draft | None, status: int
) -> HttpResponse:
    context = {
        "backtest_form": form,
        "backtest_draft": draft,
        "recent": list(backtest_list()[:10]),
    }
    return render_explorer(request, NEW, context, fragment="form", status=status)


@staff_only
@require_http_methods(["GET", "POST"])
def backtest_new(request: ExplorerRequest) -> HttpResponse:
    """GET: the start form (``?draft=<id>``; the last 7 days). POST: queue the
    backtest (or find the identical one running) and open its page; errors at
    their fields (422)."""
    if request.method == "GET":
        raw = request.GET.get("draft", "")
        draft = _draft_or_none(int(raw)) if raw.isdigit() else None
        if raw and draft is None:
            raise Http404("No such draft.")
        initial = BacktestForm.initial_for(
            now=timezone.now(), draft_id=None if draft is None else draft.pk
        )
        return _new_response(request, BacktestForm(initial=initial), draft, 200)
    form = BacktestForm(request.POST)
    raw = request.POST.get("draft", "")
    draft = _draft_or_none(int(raw)) if raw.isdigit() else None
    if not form.is_valid():
        return _new_response(request, form, draft, 422)
    try:
        backtest, _ = backtest_request(
            **form.request(), actor=str(request.user.get_username())
        )
    except NexusError as exc:
        for field, messages in (exc.fields or {"__all__": [exc.message]}).items():
            shown = field in form.fields and not form.fields[field].widget.is_hidden
            for message in messages:
                form.add_error(
                    field if shown else None,
                    message if shown or field == "__all__" else f"{field}: {message}",
                )
        return _new_response(request, form, draft, 422)
    return redirect("explorer:backtest", backtest_id=backtest.pk)


def _summary_context(summary: dict[str, Any]) -> dict[str, Any]:
    cost = summary.get("estimated_cost_usd") or {}
    return {
        "outcome_chart": outcome_shift(summary.get("outcomes") or {}),
        "cost_chart": cost_before_after(
            float(cost.get("before") or 0), float(cost.get("after") or 0)
        ),
        "backend_chart": backend_shift(summary.get("backend_shift") or {}),
        "backend_moves": list((summary.get("backend_shift") or {}).items())[:10],
        "cost": cost,
    }


def _cursor_param(cursor: tuple[Any, int] | None) -> str:
    return "" if cursor is None else f"{cursor[0].isoformat()}_{cursor[1]}"


def _detail_context(
    backtest: Backtest, filters: BacktestChangeFilterForm
) -> dict[str, Any]:
    active = backtest.status in ACTIVE_STATUSES
    total = backtest.progress_total
    percent = 100 if backtest.status == "done" else 0
    if total:
        percent = min(100, round(100 * backtest.progress_done / total))
    context: dict[str, Any] = {
        "backtest": backtest,
        "draft": _draft_or_none(backtest.draft_id),
        "active": active,
        "percent": percent,
        "poll_seconds": POLL_SECONDS,
        "filters": filters,
    }
    if backtest.summary:
        context.update(_summary_context(backtest.summary))
    if backtest.status != "queued" and filters.is_valid():
        data = filters.cleaned_data
        page = backtest_change_page(
            backtest=backtest,
            outcome_change=data.get("outcome_change") or None,
            backend=(data.get("backend") or "").strip() or None,
            cursor=data.get("cursor"),
            limit=PAGE_SIZE,
        )
        context.update(
            page=page,
            next_cursor=_cursor_param(page.next_cursor),
            paged=data.get("cursor") is not None,
        )
    return context


@staff_only
@require_GET
def backtest_detail(request: ExplorerRequest, backtest_id: int) -> HttpResponse:
    """The backtest's status, progress and (done) summary and changed decisions.

    htmx: the ``body`` fragment (the poll), or just the ``changes`` table for
    its filters and pages (``?outcome_change=&backend=&cursor=``)."""
    backtest = _backtest(backtest_id)
    filters = BacktestChangeFilterForm(request.GET)
    status = 200 if filters.is_valid() else 400
    context = _detail_context(backtest, filters)
    wants_changes = any(
        key in request.GET for key in ("outcome_change", "backend", "cursor")
    )
    if is_partial(request) and wants_changes:
        paged = filters.is_valid() and filters.cleaned_data.get("cursor") is not None
        return render_explorer(
            request,
            DETAIL,
            context,
            fragment="rows" if paged else "changes",
            status=status,
        )
    return render_explorer(request, DETAIL, context, fragment="body", status=status)


@staff_only
@require_POST
def backtest_cancel_view(request: ExplorerRequest, backtest_id: int) -> HttpResponse:
    """Cancel a queued or running backtest (it stops within a second or two)."""
    backtest = _backtest(backtest_id)
    if backtest.status in ACTIVE_STATUSES:
        try:
            backtest_cancel(backtest_id=backtest.pk)
        except NexusError as exc:
            raise Http404(exc.message) from None
        backtest = _backtest(backtest_id)
    if not is_partial(request):
        return redirect("explorer:backtest", backtest_id=backtest.pk)
    context = _detail_context(backtest, BacktestChangeFilterForm({}))
    response = render_explorer(request, DETAIL, context, fragment="body")
    retarget(response, "#backtest-body")
    reswap(response, "outerHTML")
    return response


def _change(backtest: Backtest, decision_id: uuid.UUID) -> BacktestChange:
    change = BacktestChange.objects.filter(
        backtest=backtest, decision_id=decision_id
    ).first()
    if change is None:
        raise Http404("That decision did not change in this backtest.")
    return change


@staff_only
@require_GET
def backtest_change(
    request: ExplorerRequest, backtest_id: int, decision_id: uuid.UUID
) -> HttpResponse:
    """One changed decision: the recorded decision's detail beside its replay."""
    backtest = _backtest(backtest_id)
    change = _change(backtest, decision_id)
    decision = decision_get(decision_id=decision_id)
    context: dict[str, Any] = {
        "backtest": backtest,
        "change": change,
        "draft": _draft_or_none(backtest.draft_id),
        "after_cost": (change.after or {}).get("estimated_cost_usd"),
    }
    if decision is not None:
        context.update(decision_context(decision))
    return render_explorer(request, CHANGE, context, fragment="side_by_side")


def drafts_for_rerun() -> list[Draft]:
    """Open drafts, newest first (the decision page's re-run targets)."""
    return list(drafts_newest_first().filter(status=DraftStatus.OPEN)[:50])
