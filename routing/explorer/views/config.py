"""Configuration history: one entry per change, grouped by version, linking to the
object changed and to the decisions made under each version."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from routing.explorer.forms import AuditFilterForm
from routing.explorer.http import ExplorerRequest, render_explorer
from routing.explorer_selectors import audit_object_types, audit_page, config_version

TEMPLATE = "explorer/config/history.html"


@login_required
@require_GET
def config_history(request: ExplorerRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    context: dict[str, object] = {
        "form": form,
        "object_types": audit_object_types(),
        "version": config_version(),
    }
    if not form.is_valid():
        return render_explorer(
            request, TEMPLATE, context, fragment="entries", status=400
        )
    versions, next_before = audit_page(
        filters=form.filters(), before_version=form.cleaned_data.get("before")
    )
    context.update(versions=versions, next_before=next_before)
    return render_explorer(request, TEMPLATE, context, fragment="entries")
