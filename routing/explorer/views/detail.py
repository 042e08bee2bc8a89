"""One decision: everything the pipeline recorded, and a re-run against today."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

from routing.explorer.http import ExplorerRequest, render_explorer
from routing.explorer.present import (
    DecisionView,
    decision_changes,
    decision_view,
    observed_changes,
)
from routing.explorer_selectors import (
    audit_since,
    config_version,
    decision_get,
    decision_payload,
    observed_state,
)
from routing.models import RoutingDecision, UsageReport
from routing.services.explorer import decision_rerun

TEMPLATE = "explorer/decisions/detail.html"


def _decision(decision_id: uuid.UUID) -> RoutingDecision:
    decision = decision_get(decision_id=decision_id)
    if decision is None:
        raise Http404("No such decision.")
    return decision


def _usage(decision: RoutingDecision) -> dict[str, object] | None:
    """The decision's usage in the API's shape (None: none reported yet)."""
    report = UsageReport.objects.filter(decision_id=decision.pk).first()
    if report is None:
        return None
    return {
        "input_tokens": report.input_tokens,
        "output_tokens": report.output_tokens,
        "cost_usd": report.cost_usd,
        "source": report.source,
    }


def _context(decision: RoutingDecision) -> dict[str, object]:
    edits, edit_count = audit_since(version=decision.config_version)
    payload = decision_payload(decision)
    payload.update(attempts=decision.attempts or [], usage=_usage(decision))
    return {
        "decision": decision,
        "view": decision_view(payload),
        "edits": edits,
        "edit_count": edit_count,
        "current_version": config_version(),
    }


@login_required
@require_GET
def decision_detail(request: ExplorerRequest, decision_id: uuid.UUID) -> HttpResponse:
    decision = _decision(decision_id)
    return render_explorer(request, TEMPLATE, _context(decision))


@login_required
@require_GET
def decision_rerun_view(
    request: ExplorerRequest, decision_id: uuid.UUID
) -> HttpResponse:
    """A dry run of the same request against today's configuration (nothing recorded)."""
    decision = _decision(decision_id)
    context = _context(decision)
    recorded = context["view"]
    assert isinstance(recorded, DecisionView)
    rerun = decision_rerun(decision=decision)
    rerun_view = decision_view(rerun.result.to_dict())
    backends, budgets = observed_state(
        names={c.backend for c in (*recorded.candidates, *rerun_view.candidates)}
        | {e.backend for e in (*recorded.exclusions, *rerun_view.exclusions)}
    )
    context.update(
        rerun=rerun,
        rerun_view=rerun_view,
        changes=decision_changes(recorded, rerun_view),
        observed=observed_changes(
            recorded, rerun_view, backends=backends, budgets=budgets
        ),
    )
    return render_explorer(request, TEMPLATE, context, fragment="rerun")
