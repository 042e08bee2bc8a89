"""One decision: everything the pipeline recorded, and a re-run against today."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

from routing.api.auth import DraftPermission
from routing.api.draft_changes import change_write
from routing.errors import NexusError
from routing.explorer.forms import RerunForm
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
from routing.models import Draft, DraftStatus, RoutingDecision, UsageReport
from routing.selectors import draft_list
from routing.services.backtests import DecisionReplay, decision_replay
from routing.services.explorer import DryRun, decision_rerun

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


def decision_context(decision: RoutingDecision) -> dict[str, object]:
    edits, edit_count = audit_since(version=decision.config_version)
    payload = decision_payload(decision)
    payload.update(attempts=decision.attempts or [], usage=_usage(decision))
    return {
        "decision": decision,
        "view": decision_view(payload),
        "edits": edits,
        "edit_count": edit_count,
        "current_version": config_version(),
        "open_drafts": list(draft_list().filter(status=DraftStatus.OPEN)[:50]),
    }


@login_required
@require_GET
def decision_detail(request: ExplorerRequest, decision_id: uuid.UUID) -> HttpResponse:
    decision = _decision(decision_id)
    return render_explorer(request, TEMPLATE, decision_context(decision))


@login_required
@require_GET
def decision_rerun_view(
    request: ExplorerRequest, decision_id: uuid.UUID
) -> HttpResponse:
    """A dry run of the same request against today's configuration, or (staff,
    ``?draft=<id>``) against an open draft as a backtest replays it (nothing
    recorded either way)."""
    decision = _decision(decision_id)
    context = decision_context(decision)
    recorded = context["view"]
    assert isinstance(recorded, DecisionView)
    form = RerunForm(request.GET)
    if not form.is_valid():
        return render_explorer(
            request,
            TEMPLATE,
            {**context, "rerun_form": form},
            fragment="rerun",
            status=400,
        )
    draft_id = form.cleaned_data.get("draft")
    rerun: DryRun | DecisionReplay
    if draft_id is None:
        rerun = decision_rerun(decision=decision)
    else:
        if not DraftPermission().has_permission(request, None):
            raise PermissionDenied(DraftPermission.message)
        try:
            rerun = decision_replay(
                decision_id=decision.pk, draft_id=draft_id, write=change_write
            )
        except NexusError as exc:
            context.update(rerun_error=exc.message, rerun_form=form)
            return render_explorer(
                request, TEMPLATE, context, fragment="rerun", status=exc.status_code
            )
        context["rerun_draft"] = Draft.objects.filter(pk=draft_id).first()
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
