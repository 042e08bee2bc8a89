"""The decisions list: filters, keyset pages, and the live feed."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from routing.explorer.forms import DecisionFilterForm, FeedForm, cursor_param
from routing.explorer.http import ExplorerRequest, is_partial, render_explorer
from routing.explorer_selectors import decision_feed, decision_page, reconciler_names

TEMPLATE = "explorer/decisions/list.html"
CURSOR_HEADER = "X-Nexus-Cursor"


@login_required
@require_GET
def decision_list(request: ExplorerRequest) -> HttpResponse:
    """Newest first. htmx: ``#results`` for a new filter, ``#rows`` for the next page."""
    form = DecisionFilterForm(request.GET)
    context = {"form": form, "reconcilers": reconciler_names()}
    if not form.is_valid():
        return render_explorer(
            request, TEMPLATE, context, fragment="results", status=400
        )
    cursor = form.cleaned_data["cursor"]
    page = decision_page(filters=form.filters(), cursor=cursor)
    context.update(
        page=page,
        next_cursor=cursor_param(page.next_cursor),
        newest=page.newest.isoformat() if page.newest else "",
        paged=cursor is not None,
    )
    fragment = "rows" if cursor is not None and is_partial(request) else "results"
    response = render_explorer(request, TEMPLATE, context, fragment=fragment)
    if page.newest:
        response[CURSOR_HEADER] = page.newest.isoformat()
    return response


@login_required
@require_GET
def decision_live_feed(request: ExplorerRequest) -> HttpResponse:
    """Rows newer than ``after`` matching the filters, to prepend; 204 when none.

    The newest timestamp goes back in ``X-Nexus-Cursor`` and in an out-of-band
    poller whose next request asks for rows after it.
    """
    form = FeedForm(request.GET)
    if not form.is_valid():
        return render_explorer(
            request,
            TEMPLATE,
            {"form": form},
            fragment="feed_error",
            force_fragment=True,
            status=400,
        )
    after = form.cleaned_data["after"]
    rows = decision_feed(filters=form.filters(), after=after)
    if not rows:
        response = HttpResponse(status=204)
        response[CURSOR_HEADER] = after.isoformat()
        return response
    newest = rows[0].created_at.isoformat()
    response = render_explorer(
        request,
        TEMPLATE,
        {"rows": rows, "newest": newest, "form": form},
        fragment="feed",
        force_fragment=True,
    )
    response[CURSOR_HEADER] = newest
    return response
