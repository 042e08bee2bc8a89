"""Spend: where the money goes over a window (per day, top spenders, estimates
against real cost) and every budget's gauge, forecast and alerts; staff with
``routing.add_budget`` / ``routing.change_budget`` create and edit budgets here."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from routing.errors import NexusError
from routing.explorer.charts import (
    budget_gauge,
    estimate_vs_real,
    outcomes_per_day,
    series_colours,
    spend_per_day,
)
from routing.explorer.forms import BudgetForm, SpendWindowForm
from routing.explorer.http import ExplorerRequest, is_partial, render_explorer
from routing.explorer.present import scope_words
from routing.explorer.views.access import permission_needed
from routing.explorer_selectors import (
    SPEND_DIMENSIONS,
    BudgetCard,
    SpendOverview,
    budget_cards,
    budget_get,
    config_version,
    decisions_per_day,
    spend_overview,
)
from routing.models import Budget
from routing.services.config import config_save

TEMPLATE = "explorer/spend/page.html"


def _card(card: BudgetCard) -> dict[str, Any]:
    """A budget card's context: the card, its gauge and its scope in words."""
    return {
        "card": card,
        "gauge": budget_gauge(
            spent=card.budget.spent_usd,
            reserved=card.budget.reserved_usd,
            limit=card.limit,
            soft_mark=card.soft_mark,
            projected=card.forecast.projected_period_spend_usd,
        ),
        "scope": scope_words(card.budget.scope),
    }


def _window_context(overview: SpendOverview, query: dict[str, str]) -> dict[str, Any]:
    colours = series_colours(list(overview.series))
    return {
        "overview": overview,
        "spend_chart": spend_per_day(overview.axis, overview.series),
        "legend": [(name, colours[name]) for name in overview.series],
        "accuracy_chart": estimate_vs_real(
            overview.axis,
            [day.estimated for day in overview.accuracy],
            [day.real for day in overview.accuracy],
        ),
        "stack_links": [
            (dimension, _query({**query, "stack": dimension}))
            for dimension in SPEND_DIMENSIONS
        ],
        "top_tables": [
            (
                dimension,
                [(row.keys[dimension], row) for row in overview.tops[dimension]],
            )
            for dimension in SPEND_DIMENSIONS
        ],
        "day_rows": [
            (day, [overview.series[name][i] for name in overview.series])
            for i, day in enumerate(overview.axis)
        ],
    }


def _query(params: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return "?" + urlencode({key: value for key, value in params.items() if value})


def _page_context(
    request: ExplorerRequest, form: SpendWindowForm, **extra: Any
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "form": form,
        "cards": _cards(),
        "version": config_version(),
        **extra,
    }
    if form.is_valid():
        data = form.cleaned_data
        query = {key: request.GET.get(key, "") for key in ("days", "since", "until")}
        overview = spend_overview(
            first=data["first"], last=data["last"], stack=data["stack"]
        )
        context.update(_window_context(overview, query))
    return context


@login_required
@require_GET
def spend_page(request: ExplorerRequest) -> HttpResponse:
    """The page; htmx (window form, stack links) gets the ``window`` fragment."""
    form = SpendWindowForm(request.GET, today=timezone.now().date())
    context = _page_context(request, form)
    status = 200 if form.is_valid() else 400
    return render_explorer(request, TEMPLATE, context, fragment="window", status=status)


@require_GET
def budget_redirect(request: ExplorerRequest) -> HttpResponseRedirect:
    """``/budget/`` was this page's address before it showed spend."""
    query = request.META.get("QUERY_STRING", "")
    return redirect(reverse("explorer:spend") + (f"?{query}" if query else ""))


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


def _budget(name: str) -> Budget:
    budget = budget_get(name=name)
    if budget is None:
        raise Http404("No such budget.")
    return budget


def _one_card(name: str) -> dict[str, Any]:
    cards = budget_cards(name=name)
    if not cards:
        raise Http404("No such budget.")
    return _card(cards[0])


def _save(form: BudgetForm, budget: Budget, request: ExplorerRequest) -> bool:
    """Save through the audited service; False (errors on the form) when refused."""
    try:
        config_save(instance=form.apply_to(budget), actor=request.user.get_username())
    except (ValidationError, NexusError) as exc:
        form.add_model_errors(exc)
        return False
    return True


def _cards() -> list[dict[str, Any]]:
    return [_card(card) for card in budget_cards()]


def _form_response(
    request: ExplorerRequest, form: BudgetForm, budget: Budget | None
) -> HttpResponse:
    """The form again (with its errors: 422); the whole page without htmx.

    htmx: an edit form replaces its card; a new budget's form is shown (GET)
    and answered (POST) inside the budgets section.
    """
    status = 422 if form.errors else 200
    editing: dict[str, Any] = {
        "budget_form": form,
        "editing": budget.name if budget else "",
    }
    if budget is None:
        editing["creating"] = True
    if is_partial(request):
        if budget is None and request.method == "POST":
            context = {**editing, "cards": _cards()}
            return render_explorer(
                request, TEMPLATE, context, fragment="budgets", status=status
            )
        return render_explorer(
            request, TEMPLATE, editing, fragment="budget_form", status=status
        )
    window = SpendWindowForm({}, today=timezone.now().date())
    context = _page_context(request, window, **editing)
    return render_explorer(request, TEMPLATE, context, status=status)


def _saved(request: ExplorerRequest, name: str, *, created: bool) -> HttpResponse:
    """Full page: back to the Spend page at the budget. htmx: its card (a new
    budget: the budgets section, the new one among them)."""
    if not is_partial(request):
        return redirect(reverse("explorer:spend") + f"#budget-{name}")
    version = config_version()
    if created:
        context = {"cards": _cards(), "version": version}
        return render_explorer(request, TEMPLATE, context, fragment="budgets")
    context = {**_one_card(name), "saved": True, "version": version}
    return render_explorer(request, TEMPLATE, context, fragment="budget_card")


@login_required
@permission_needed("routing.add_budget")
@require_http_methods(["GET", "POST"])
def budget_new(request: ExplorerRequest) -> HttpResponse:
    """GET: an empty budget form. POST: create it (audited, counts the period so far)."""
    if request.method == "GET":
        return _form_response(request, BudgetForm(), None)
    form = BudgetForm(request.POST)
    if form.is_valid() and _save(form, Budget(), request):
        return _saved(request, form.cleaned_data["name"].strip(), created=True)
    return _form_response(request, form, None)


@login_required
@permission_needed("routing.change_budget")
@require_http_methods(["GET", "POST"])
def budget_edit(request: ExplorerRequest, name: str) -> HttpResponse:
    """GET: the budget as a form in place of its card. POST: save it."""
    budget = _budget(name)
    if request.method == "GET":
        return _form_response(request, BudgetForm.for_budget(budget), budget)
    form = BudgetForm(request.POST)
    if form.is_valid() and _save(form, budget, request):
        return _saved(request, budget.name, created=False)
    return _form_response(request, form, _budget(name))


@login_required
@require_GET
def budget_card(request: ExplorerRequest, name: str) -> HttpResponse:
    """One budget's card, read-only (what "cancel" swaps back in)."""
    if not is_partial(request):
        return redirect(reverse("explorer:spend") + f"#budget-{name}")
    return render_explorer(request, TEMPLATE, _one_card(name), fragment="budget_card")
