"""The simulator: describe a request, see the decision; nothing is recorded."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from routing.explorer.forms import SimulateForm
from routing.explorer.http import ExplorerRequest, render_explorer
from routing.explorer.present import decision_view
from routing.services.explorer import decision_simulate

TEMPLATE = "explorer/simulate/page.html"


@login_required
@require_GET
def simulate(request: ExplorerRequest) -> HttpResponse:
    """GET, so a simulation is a shareable URL; a dry run has no side effects."""
    if "model" not in request.GET:
        form = SimulateForm(initial={"model": "gpt-4o"})
        return render_explorer(request, TEMPLATE, {"form": form}, fragment="result")
    form = SimulateForm(request.GET)
    if not form.is_valid():
        return render_explorer(
            request, TEMPLATE, {"form": form}, fragment="result", status=400
        )
    result = decision_simulate(**form.cleaned_data)
    view = decision_view(result.result.to_dict())
    context = {"form": form, "result": result, "view": view}
    return render_explorer(request, TEMPLATE, context, fragment="result")
