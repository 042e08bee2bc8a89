"""Decision templates: the preset dictionaries of the delta stored form.

A decision's compact JSON (``routing.decision_storage``) repeats, call after
call, what its fleet and model make of every request: the backend names, the
reasons, the keys. ``decision_template_apply`` stores a decision as a delta
against a template, an earlier decision's compact JSON: the first decision of
its requested model in this process and calendar month (UTC) becomes that
template (stored as it is, the template inserted in the same transaction and
used by later decisions only once committed). A model keeps up to
``PER_KEY`` templates, the last one that served first; when the delta against
each comes out larger than half its text (another shape of traffic, or
the fleet changed), that decision becomes a template too, in place of the
least recent. ``decision_view`` reads a decision in any form.

Templates are content-addressed (``id`` is a hash of the text), so processes
never collide; each process keeps its templates in use and the texts it read
in memory, a bounded number of each.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from routing import decision_storage
from routing.decision_storage import DELTA, VERSION, Deflater
from routing.models import DecisionTemplate

#: A delta larger than its text divided by this makes the decision a template.
#: Not lower: decisions of one shape differ by their load and latency factors,
#: numbers a template cannot predict, and on mixed traffic deltas of a third
#: of their text are common however recent the template.
REFRESH_RATIO = 2
#: Templates kept per (model, month): traffic of one model takes a few shapes
#: (strategies, restricted or not, routes and rejects), each its template.
PER_KEY = 4
#: (model, month) keys in use at once per process; past it, all are forgotten
#: and made again as decisions come.
KEYS_MAX = 1000
#: Template texts remembered per process for reading.
TEXTS_MAX = 2000


@dataclass(frozen=True)
class _Current:
    id: int
    deflater: Deflater


_current: dict[tuple[str, str], list[_Current]] = {}
_texts: dict[int, str] = {}
_lock = threading.Lock()


def template_id(text: str) -> int:
    """A template's id: 63 bits of a hash of its text."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _month(created_at: datetime) -> str:
    return created_at.astimezone(UTC).strftime("%Y-%m")


def decision_template_apply(columns: dict[str, Any]) -> dict[str, Any]:
    """``columns`` (``encode``'s, with ``requested_model`` and ``created_at``)
    in the delta form against the current template of their model and month;
    as they are when there is none yet or the delta is poor (this decision
    then becomes the template), or when they are not in the compact form."""
    trace = columns.get("trace")
    if not (type(trace) is dict and trace.get("v") == VERSION):
        return columns
    text: str = trace["z"]
    created_at: datetime = columns["created_at"]
    key = (columns["requested_model"], _month(created_at))
    for current in _current.get(key, ()):
        delta = current.deflater.delta(text)
        if len(delta) * REFRESH_RATIO <= len(text):
            _first(key, current)
            return {**columns, "trace": {"v": DELTA, "t": current.id, "b": delta}}
    _template_create(key=key, text=text, created_at=created_at)
    return columns


def _first(key: tuple[str, str], current: _Current) -> None:
    """Try ``current`` first for ``key`` from now on."""
    with _lock:
        in_use = _current.get(key)
        if in_use and in_use[0] is not current and current in in_use:
            in_use.remove(current)
            in_use.insert(0, current)


def _template_create(*, key: tuple[str, str], text: str, created_at: datetime) -> None:
    """Store ``text`` as a template (in the caller's transaction); use it for
    ``key`` once committed."""
    new_id = template_id(text)
    DecisionTemplate.objects.bulk_create(
        [
            DecisionTemplate(
                id=new_id, created_at=created_at, requested_model=key[0], text=text
            )
        ],
        ignore_conflicts=True,
    )
    transaction.on_commit(lambda: _use(key, new_id, text))


def _use(key: tuple[str, str], new_id: int, text: str) -> None:
    with _lock:
        if len(_current) >= KEYS_MAX:
            _current.clear()
        in_use = _current.setdefault(key, [])
        in_use.insert(0, _Current(new_id, Deflater(text)))
        del in_use[PER_KEY:]
    _remember(new_id, text)


def _remember(known_id: int, text: str) -> None:
    with _lock:
        if len(_texts) >= TEXTS_MAX:
            _texts.clear()
        _texts[known_id] = text


def template_texts(ids: Iterable[int]) -> dict[int, str]:
    """The texts of the templates ``ids`` (one query for those not in memory);
    an id with no template is left out."""
    wanted = set(ids)
    missing = [i for i in wanted if i not in _texts]
    if missing:
        found = DecisionTemplate.objects.filter(id__in=missing).values_list(
            "id", "text"
        )
        for found_id, text in found:
            _remember(found_id, text)
    return {i: _texts[i] for i in wanted if i in _texts}


def decision_template_ids(decisions: Iterable[Any]) -> set[int]:
    """The templates the ``decisions`` stored as deltas are stored against."""
    return {
        d.trace["t"]
        for d in decisions
        if type(d.trace) is dict and d.trace.get("v") == DELTA
    }


def template_text(wanted: int) -> str:
    """One template's text; ``LookupError`` when it is missing."""
    text = _texts.get(wanted)
    if text is not None:
        return text
    try:
        return template_texts([wanted])[wanted]
    except KeyError:
        raise LookupError(
            f"decision template {wanted} is missing: decisions stored against it "
            "cannot be read (it is deleted only with its month's decisions)"
        ) from None


def decision_view(decision: Any) -> dict[str, Any]:
    """A recorded decision's full JSON columns, in whichever form it is stored."""
    return decision_storage.decision_view(decision, template_text)


def decision_templates_forget() -> None:
    """Forget the templates in use and the texts read (tests; a database reset)."""
    with _lock:
        _current.clear()
        _texts.clear()


@transaction.atomic
def decision_templates_expire(*, before: datetime) -> int:
    """Delete the templates made before ``before`` (a month's start, with
    every decision before it already deleted); how many."""
    deleted, _ = DecisionTemplate.objects.filter(created_at__lt=before).delete()
    return deleted
