"""Backends: the fleet table; users with ``routing.operate_backend`` (the
``operators`` and ``admins`` groups) edit zone, tier, priority and enabled inline."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods

from routing.explorer.forms import BackendEditForm
from routing.explorer.http import ExplorerRequest, is_partial, render_explorer
from routing.explorer.views.access import permission_needed
from routing.explorer_selectors import backend_get, backend_table, config_version
from routing.models import Backend
from routing.services.explorer import backend_settings_save

TEMPLATE = "explorer/backends/list.html"


def _backend(name: str) -> Backend:
    backend = backend_get(name=name)
    if backend is None:
        raise Http404("No such backend.")
    return backend


@login_required
@require_GET
def backend_list(request: ExplorerRequest) -> HttpResponse:
    context = {"backends": backend_table(), "version": config_version()}
    return render_explorer(request, TEMPLATE, context, fragment="table")


@login_required
@require_GET
def backend_row(request: ExplorerRequest, name: str) -> HttpResponse:
    """One row, read-only (what "cancel" swaps back in)."""
    if not is_partial(request):
        return redirect("explorer:backends")
    context = {"backend": _backend(name)}
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
                    "backend": _backend(name),
                    "saved": True,
                    "version": config_version(),
                }
                return render_explorer(request, TEMPLATE, context, fragment="row")
        backend = _backend(name)  # the failed save may have changed the instance
    context = {
        "backend": backend,
        "edit_form": form,
        "editing": backend.name,
        "backends": backend_table(),
        "version": config_version(),
    }
    status = 422 if form.errors else 200
    return render_explorer(
        request, TEMPLATE, context, fragment="edit_row", status=status
    )
