"""Budget: spend against the limit, and decisions over time by outcome."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from routing.explorer.charts import budget_gauge, outcomes_per_day
from routing.explorer.http import ExplorerRequest, render_explorer
from routing.explorer_selectors import budget_overviews, decisions_per_day

TEMPLATE = "explorer/budget/page.html"


@login_required
@require_GET
def budget_page(request: ExplorerRequest) -> HttpResponse:
    overviews = [
        (
            overview,
            budget_gauge(
                spent=overview.spent,
                reserved=overview.reserved,
                limit=overview.limit,
                soft_mark=overview.soft_mark,
                projected=overview.projected,
            ),
        )
        for overview in budget_overviews()
    ]
    return render_explorer(request, TEMPLATE, {"overviews": overviews})


@login_required
@require_GET
def outcomes_panel(request: ExplorerRequest) -> HttpResponse:
    """Loaded lazily (``hx-trigger="load"``): it aggregates two weeks of decisions."""
    axis, series = decisions_per_day(days=14)
    totals = {outcome: sum(values) for outcome, values in series.items()}
    context = {"chart": outcomes_per_day(axis, series), "totals": totals}
    return render_explorer(
        request, TEMPLATE, context, fragment="outcomes", force_fragment=True
    )
