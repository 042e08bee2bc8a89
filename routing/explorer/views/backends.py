"""Backends: the fleet table, with what the proxy sees of each backend now
(requests in flight, circuit state); users with ``routing.operate_backend`` (the
``operators`` and ``admins`` groups) edit zone, tier, priority and enabled inline."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from routing.explorer.forms import BackendEditForm
from routing.explorer.http import ExplorerRequest, is_partial, render_explorer
from routing.explorer.present import BackendRow, backend_table_row
from routing.explorer.views.access import permission_needed
from routing.explorer_selectors import backend_get, backend_table, config_version
from routing.models import Backend
from routing.services.explorer import backend_settings_save
from routing.services.passive_health import in_flight_counts

TEMPLATE = "explorer/backends/list.html"


def _backend(name: str) -> Backend:
    backend = backend_get(name=name)
    if backend is None:
        raise Http404("No such backend.")
    return backend


def _rows(backends: list[Backend]) -> list[BackendRow]:
    """The table's rows: one read of the in-flight counts for them all."""
    in_flight, now = in_flight_counts(), timezone.now()
    return [backend_table_row(b, in_flight=in_flight, now=now) for b in backends]


def _row(backend: Backend) -> BackendRow:
    return _rows([backend])[0]


@login_required
@require_GET
def backend_list(request: ExplorerRequest) -> HttpResponse:
    context = {"rows": _rows(backend_table()), "version": config_version()}
    return render_explorer(request, TEMPLATE, context, fragment="table")


@login_required
@require_GET
def backend_row(request: ExplorerRequest, name: str) -> HttpResponse:
    """One row, read-only (what "cancel" swaps back in)."""
    if not is_partial(request):
        return redirect("explorer:backends")
    context = {"row": _row(_backend(name))}
    return render_explorer(request, TEMPLATE, context, fragment="row")


@login_required
@permission_needed("routing.operate_backend")
@require_http_methods(["GET", "POST"])
def backend_edit(request: ExplorerRequest, name: str) -> HttpResponse:
    """GET: the row as a form. POST: save through the audited service."""
    backend = _backend(name)
    if request.method == "GET":
        form = BackendEditForm.for_backend(backend)
    else:
        form = BackendEditForm(request.POST)
        if form.is_valid():
            try:
                backend_settings_save(
                    backend=backend,
                    actor=request.user.get_username(),
                    **form.cleaned_data,
                )
            except ValidationError as exc:
                form.add_model_errors(exc)
            else:
                if not is_partial(request):
                    return redirect("explorer:backends")
                context = {
                    "row": _row(_backend(name)),
                    "saved": True,
                    "version": config_version(),
                }
                return render_explorer(request, TEMPLATE, context, fragment="row")
        backend = _backend(name)  # the failed save may have changed the instance
    context = {
        "backend": backend,
        "edit_form": form,
        "editing": backend.name,
        "rows": _rows(backend_table()),
        "version": config_version(),
    }
    status = 422 if form.errors else 200
    return render_explorer(
        request, TEMPLATE, context, fragment="edit_row", status=status
    )
