"""Drafts: proposed configuration changes, edited with the live edit forms and
checked by the drafts service (the live edit's rules and messages), then
applied as one config version or discarded.

Who may do what is the drafts API's rule: staff read and edit drafts
(``DraftPermission``); applying also needs the permissions each live edit
would (``draft_apply_missing_permissions``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from routing.api.auth import (
    DraftPermission,
    draft_apply_authorizer,
    draft_apply_missing_permissions,
)
from routing.api.draft_changes import change_write
from routing.api.drafts import DraftChangeSerializer
from routing.api.exceptions import flatten_detail
from routing.errors import NexusError
from routing.explorer.draft_forms import (
    CHANGE_FORMS,
    RESOURCE_LABELS,
    ChangeTargetForm,
    DraftChangeForm,
    DraftState,
    NewDraftForm,
)
from routing.explorer.forms import BacktestForm
from routing.explorer.http import ExplorerRequest, is_partial, render_explorer
from routing.explorer_selectors import config_names, config_object_get, config_version
from routing.models import Draft, DraftStatus
from routing.selectors import backtest_list
from routing.selectors import draft_list as drafts_newest_first
from routing.services.drafts import (
    KINDS,
    DraftChange,
    draft_apply,
    draft_change_add,
    draft_change_remove,
    draft_changes_from_json,
    draft_create,
    draft_discard,
    draft_preview,
)

LIST = "explorer/drafts/list.html"
DETAIL = "explorer/drafts/detail.html"
#: At most this many drafts on the list page.
LIST_LIMIT = 200

View = Callable[..., HttpResponse]


def staff_only(view: View) -> View:
    """The drafts API's rule for people: a staff login (403 otherwise)."""

    @wraps(view)
    def wrapped(request: ExplorerRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not DraftPermission().has_permission(request, view):  # type: ignore[arg-type]
            raise PermissionDenied(DraftPermission.message)
        return view(request, *args, **kwargs)

    return login_required(wrapped)


class _BadTarget(Exception):
    """A change form asked for with a bad ``action`` or object name."""

    def __init__(self, form: ChangeTargetForm) -> None:
        super().__init__("bad change target")
        self.form = form


class _Forbidden(Exception):
    """A change the login may not make live (shown, nothing applied)."""


def _draft(draft_id: int) -> Draft:
    draft = drafts_newest_first().filter(pk=draft_id).first()
    if draft is None:
        raise Http404("No such draft.")
    return draft


def _actor(request: ExplorerRequest) -> str:
    return str(request.user.get_username())


# --- the list -----------------------------------------------------------------


def backtest_form_context(draft: Draft | None) -> dict[str, Any]:
    """The start form of a backtest on ``draft`` (None: today's configuration),
    for pages that show it (a draft's page, the drafts list)."""
    initial = BacktestForm.initial_for(
        now=timezone.now(), draft_id=None if draft is None else draft.pk
    )
    return {"backtest_form": BacktestForm(initial=initial), "backtest_draft": draft}


def _list_response(
    request: ExplorerRequest, form: NewDraftForm, status: int = 200
) -> HttpResponse:
    drafts = list(drafts_newest_first()[:LIST_LIMIT])
    context = {
        "drafts": drafts,
        "limited": len(drafts) == LIST_LIMIT,
        "form": form,
        "version": config_version(),
        "backtests": list(backtest_list()[:10]),
        **backtest_form_context(None),
    }
    return render_explorer(request, LIST, context, status=status)


@staff_only
@require_http_methods(["GET", "POST"])
def draft_list(request: ExplorerRequest) -> HttpResponse:
    """GET: every draft, newest first, and a form for a new one. POST: create it
    (no changes yet) and open it."""
    if request.method == "GET":
        return _list_response(request, NewDraftForm())
    form = NewDraftForm(request.POST)
    if not form.is_valid():
        return _list_response(request, form, status=422)
    draft = draft_create(
        name=form.cleaned_data["name"].strip(),
        description=form.cleaned_data["description"],
        changes=[],
        actor=_actor(request),
        write=change_write,
    )
    return redirect("explorer:draft", draft_id=draft.pk)


# --- one draft ----------------------------------------------------------------


def _names_now() -> dict[str, list[str]]:
    return {resource: config_names(resource=resource) for resource in RESOURCE_LABELS}


def _state(
    draft: Draft, resource: str | None = None, name: str = ""
) -> tuple[dict[str, list[str]], dict[str, Any] | None]:
    """Every resource's names and, given ``resource`` and ``name``, that
    object's form values, as the draft's changes leave the configuration."""

    def read() -> tuple[dict[str, list[str]], dict[str, Any] | None]:
        names = _names_now()
        initial = None
        if resource and name:
            found = config_object_get(resource=resource, name=name)
            if found is not None:
                initial = CHANGE_FORMS[resource].initial_for(found)
        return names, initial

    return draft_preview(
        changes=draft_changes_from_json(draft.changes),
        write=change_write,
        read=read,
        skip_invalid=True,
    )


def _change_rows(draft: Draft) -> list[dict[str, Any]]:
    """The changes as the page lists them, with what the remove form sends back."""
    return [
        {
            "index": index,
            "number": index + 1,
            "change": change,
            "kind": KINDS.get(change.resource, change.resource),
            "fields": [
                (key, json.dumps(value, ensure_ascii=False))
                for key, value in change.fields.items()
            ],
            "json": json.dumps(change.as_json(), sort_keys=True),
        }
        for index, change in enumerate(draft_changes_from_json(draft.changes))
    ]


def _numbered(errors: dict[str, list[str]]) -> list[str]:
    """``changes.<i>.<field>`` errors as sentences naming the change by number."""
    lines = []
    for key, messages in errors.items():
        parts = key.split(".", 2)
        if parts[0] == "changes" and len(parts) > 1 and parts[1].isdigit():
            where = f"Change {int(parts[1]) + 1}"
            if len(parts) > 2:
                where += f", {parts[2]}"
        else:
            where = key
        lines.append(f"{where}: {' '.join(messages)}")
    return lines


def _error_indexes(errors: dict[str, list[str]]) -> set[int]:
    return {
        int(key.split(".")[1])
        for key in errors
        if key.startswith("changes.") and key.split(".")[1].isdigit()
    }


def _detail_context(
    request: ExplorerRequest,
    draft: Draft,
    *,
    change_form: DraftChangeForm | None = None,
    change_target: dict[str, str] | None = None,
    names: dict[str, list[str]] | None = None,
    problems: list[str] | None = None,
    problem_indexes: set[int] | None = None,
    notice: str = "",
) -> dict[str, Any]:
    is_open = draft.status == DraftStatus.OPEN
    if is_open and names is None:
        names, _ = _state(draft)
    changes = draft_changes_from_json(draft.changes)
    missing = draft_apply_missing_permissions(request.user, changes) if is_open else []
    return {
        "draft": draft,
        "is_open": is_open,
        "rows": _change_rows(draft),
        "resources": [
            (resource, label, (names or {}).get(resource, []))
            for resource, label in RESOURCE_LABELS.items()
        ],
        "change_form": change_form,
        "change_target": change_target or {},
        "problems": problems or [],
        "problem_indexes": problem_indexes or set(),
        "missing_permissions": missing,
        "notice": notice,
        "version": config_version(),
        "backtests": list(backtest_list().filter(draft_id=draft.pk)[:10]),
        **(backtest_form_context(draft) if is_open else {}),
    }


def _body(
    request: ExplorerRequest, draft: Draft, status: int = 200, **extra: Any
) -> HttpResponse:
    """htmx: the draft's body fragment; otherwise the whole page."""
    context = _detail_context(request, draft, **extra)
    response = render_explorer(request, DETAIL, context, fragment="body", status=status)
    if is_partial(request):  # whichever element asked, the body is replaced
        retarget(response, "#draft-body")
        reswap(response, "outerHTML")
    return response


@staff_only
@require_GET
def draft_detail(request: ExplorerRequest, draft_id: int) -> HttpResponse:
    return _body(request, _draft(draft_id))


def _target(request: ExplorerRequest, resource: str) -> tuple[str, str]:
    """The ``action`` and object ``name`` of a change form (400 when bad)."""
    if resource not in CHANGE_FORMS:
        raise Http404("No such resource.")
    data = request.GET if request.method == "GET" else request.POST
    target = ChangeTargetForm(data, prefix="target")
    if not target.is_valid():
        raise _BadTarget(target)
    return target.cleaned_data["action"], target.cleaned_data["name"]


def _change_form(
    resource: str,
    names: dict[str, list[str]],
    initial: dict[str, Any] | None,
    data: Any = None,
) -> DraftChangeForm:
    """``resource``'s change form; ``initial`` is the object being updated."""
    state = DraftState(
        zones=names.get("zones", []),
        backends=names.get("backends", []),
    )
    form_class = CHANGE_FORMS[resource]
    return form_class(data, initial=initial or {}, state=state)


def _form_response(
    request: ExplorerRequest,
    draft: Draft,
    form: DraftChangeForm | None,
    target: dict[str, str],
    names: dict[str, list[str]],
    status: int,
) -> HttpResponse:
    """The change form (htmx: just it; otherwise the page with it open)."""
    context = _detail_context(
        request, draft, change_form=form, change_target=target, names=names
    )
    if is_partial(request):
        return render_explorer(
            request, DETAIL, context, fragment="change_form", status=status
        )
    return render_explorer(request, DETAIL, context, status=status)


def _change(
    resource: str, action: str, name: str, form: DraftChangeForm | None
) -> DraftChange:
    if form is None:
        return DraftChange(resource=resource, action=action, name=name)
    fields = form.change_fields(action)
    if action == "create":
        name = str(form.api_values().get(form.LOOKUP) or "").strip()
    return DraftChange(resource=resource, action=action, name=name, fields=fields)


def _check_shape(change: DraftChange) -> dict[str, list[str]]:
    """The drafts API's own check of one change (e.g. an update of no field)."""
    shape = DraftChangeSerializer(data=change.as_json())
    if shape.is_valid():
        return {}
    return flatten_detail(shape.errors)


@staff_only
@require_http_methods(["GET", "POST"])
def draft_change(
    request: ExplorerRequest, draft_id: int, resource: str
) -> HttpResponse:
    """GET: the form of one change (``?target-action=&target-name=``), prefilled
    for an update
    with the object as the draft leaves it. POST: add the change; the service's
    errors come back at the form's fields (422)."""
    draft = _draft(draft_id)
    if draft.status != DraftStatus.OPEN:
        return _body(request, draft, status=409, problems=[_read_only(draft)])
    try:
        action, name = _target(request, resource)
    except _BadTarget as bad:
        lines = [m for messages in bad.form.errors.values() for m in messages]
        return _body(request, draft, status=400, problems=lines)
    names, initial = _state(draft, resource, name if action == "update" else "")
    target = {
        "resource": resource,
        "action": action,
        "name": name,
        "label": RESOURCE_LABELS[resource],
    }
    if action == "update" and initial is None:
        problems = [
            f"No {KINDS[resource]} named {name!r} in today's configuration with "
            "the draft's changes."
        ]
        return _body(request, draft, status=400, problems=problems, names=names)
    data = request.POST if request.method == "POST" else None
    form = None if action == "delete" else _change_form(resource, names, initial, data)
    if request.method == "GET":
        return _form_response(request, draft, form, target, names, 200)
    if form is not None and not form.is_valid():
        return _form_response(request, draft, form, target, names, 422)
    change = _change(resource, action, name, form)
    shape_errors = _check_shape(change)
    if shape_errors:
        if form is None:
            return _body(request, draft, status=400, problems=_numbered(shape_errors))
        form.add_change_errors(
            {"__all__" if k == "fields" else k: v for k, v in shape_errors.items()}
        )
        return _form_response(request, draft, form, target, names, 422)
    try:
        draft = draft_change_add(draft_id=draft.pk, change=change, write=change_write)
    except DjangoValidationError as exc:
        return _refused(request, draft, form, target, names, exc)
    except NexusError as exc:  # e.g. applied meanwhile
        return _body(
            request, _draft(draft_id), status=exc.status_code, problems=[exc.message]
        )
    if not is_partial(request):
        return redirect(reverse("explorer:draft", args=[draft.pk]) + "#changes")
    return _body(request, draft, notice=f"Change {len(draft.changes)} added.")


def _refused(
    request: ExplorerRequest,
    draft: Draft,
    form: DraftChangeForm | None,
    target: dict[str, str],
    names: dict[str, list[str]],
    exc: DjangoValidationError,
) -> HttpResponse:
    """The new change's errors at its fields; earlier changes that no longer
    hold (the configuration changed since) above the form, by number."""
    errors: dict[str, list[str]] = exc.message_dict
    mine = f"changes.{len(draft.changes)}"
    own: dict[str, list[str]] = {}
    others: dict[str, list[str]] = {}
    for key, messages in errors.items():
        if key == mine or key.startswith(mine + "."):
            own[key[len(mine) + 1 :] or "__all__"] = messages
        else:
            others[key] = messages
    if form is None:  # a delete: no fields to show them at
        return _body(
            request, draft, status=422, problems=_numbered(errors), names=names
        )
    form.add_change_errors(own)
    for line in _numbered(others):
        form.add_error(None, line)
    return _form_response(request, draft, form, target, names, 422)


def _read_only(draft: Draft) -> str:
    if draft.status == DraftStatus.APPLIED:
        return (
            f"Draft {draft.pk} was applied as config version "
            f"{draft.applied_version}; it is read-only."
        )
    return f"Draft {draft.pk} was discarded; it is read-only."


@staff_only
@require_POST
def draft_change_remove_view(
    request: ExplorerRequest, draft_id: int, index: int
) -> HttpResponse:
    """Remove one change (the rest validated again, as a PATCH does)."""
    draft = _draft(draft_id)
    try:
        raw = json.loads(request.POST.get("change", ""))
        expected = draft_changes_from_json([raw])[0]
    except (ValueError, KeyError, TypeError, IndexError):
        return _body(
            request, draft, status=400, problems=["Which change? Reload the page."]
        )
    try:
        draft = draft_change_remove(
            draft_id=draft.pk, index=index, expected=expected, write=change_write
        )
    except DjangoValidationError as exc:
        problems = [f"Change {index + 1} was not removed: later changes need it."]
        # The indexes are those of the draft without the change: shift them back.
        shifted = {
            _shift(key, index): messages for key, messages in exc.message_dict.items()
        }
        return _body(
            request,
            draft,
            status=422,
            problems=problems + _numbered(shifted),
            problem_indexes=_error_indexes(shifted),
        )
    except NexusError as exc:
        return _body(
            request, _draft(draft_id), status=exc.status_code, problems=[exc.message]
        )
    if not is_partial(request):
        return redirect(reverse("explorer:draft", args=[draft.pk]) + "#changes")
    return _body(request, draft, notice=f"Change {index + 1} removed.")


def _shift(key: str, removed: int) -> str:
    """``changes.<i>...`` of the draft without change ``removed`` as the index
    the page shows (one more from ``removed`` on)."""
    parts = key.split(".", 2)
    if parts[0] != "changes" or len(parts) < 2 or not parts[1].isdigit():
        return key
    index = int(parts[1])
    parts[1] = str(index + 1 if index >= removed else index)
    return ".".join(parts)


@staff_only
@require_POST
def draft_apply_view(request: ExplorerRequest, draft_id: int) -> HttpResponse:
    """Apply the draft as one config version; a conflict (409) names the
    objects edited since, and the changes concerned are marked."""
    draft = _draft(draft_id)
    try:
        draft = draft_apply(
            draft_id=draft.pk,
            actor=_actor(request),
            write=change_write,
            authorize=draft_apply_authorizer(request.user, _Forbidden),
        )
    except _Forbidden as exc:
        return _body(request, draft, status=403, problems=[str(exc)])
    except NexusError as exc:
        fields = exc.fields or {}
        return _body(
            request,
            _draft(draft_id),
            status=exc.status_code,
            problems=[exc.message, *_numbered(fields)] if fields else [exc.message],
            problem_indexes=_error_indexes(fields),
        )
    if not is_partial(request):
        return redirect("explorer:draft", draft_id=draft.pk)
    return _body(
        request, draft, notice=f"Applied as config version {draft.applied_version}."
    )


@staff_only
@require_POST
def draft_discard_view(request: ExplorerRequest, draft_id: int) -> HttpResponse:
    """Discard the draft (kept, read-only)."""
    try:
        draft = draft_discard(draft_id=draft_id)
    except NexusError as exc:
        if exc.status_code == 404:
            raise Http404(exc.message) from None
        return _body(
            request, _draft(draft_id), status=exc.status_code, problems=[exc.message]
        )
    if not is_partial(request):
        return redirect("explorer:draft", draft_id=draft.pk)
    return _body(request, draft, notice="Discarded.")
