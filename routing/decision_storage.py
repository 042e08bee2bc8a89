"""The stored form of a recorded decision: compact on write, full on read.

``encode`` turns the JSON columns of a decision row (as
``routing.services.decisions.decision_columns`` builds them: today's full
view) into the compact form; ``expand`` turns a stored row, in either form,
back into the full view. Every reader goes through ``decision_view``.

The compact form (version 2) lives in the ``trace`` column as
``{"v": 2, "z": TEXT}``, where TEXT is compact JSON (smaller in a jsonb string
than as jsonb containers, which spend 4-8 bytes on every element). The
``annotations`` column keeps only ``budget_status`` (PostgreSQL's one-statement
write relabels it in place); ``requirements``, ``constraints``, ``warnings`` and
``details`` keep their defaults. Names in ``WORDS`` (reconcilers, annotation
and detail keys, scorers) are stored as their index there. TEXT holds:

- ``n``: the decision's backend names, once, in order of first appearance in
  the trace, front-coded: each entry is the length of the prefix it shares
  with the previous one, as one character, then the rest, joined by spaces
  (``"0rack-00 67 510"`` for rack-00, rack-07, rack-10); a plain list when a
  name is empty or holds a space;
- ``x``: each distinct reason and suggested action, once;
- ``s``: per trace entry ``[reconciler, policy, model, duration, before,
  after, excluded, error]``, trailing Nones dropped: the model None when it is
  the previous entry's (for the first entry: the row's ``model`` column),
  ``before`` None when it is the previous entry's ``after``, ``after`` None
  when it is ``before`` less the excluded, name lists as packed indexes into
  ``n`` (``"0-9,c,f-h"``, base 36), excluded as ``[names, reasons, actions]``
  with reasons and actions as columns of indexes into ``x``;
- ``a``: the annotations in order, each ``[key, value]``, ``[key]`` (in the
  ``annotations`` column), ``[key, 1, i]`` (``<reconciler>_excluded``: trace
  entry i's reasons), ``[key, 3, 0]`` (the smart strategy's ``scores``, worked
  out from ``score_breakdown`` and ``scorer_weights``) or
  ``[key, 2, keys, values]`` (a map keyed by backend: the keys as packed
  indexes or as trace entry i's ``after``, the values as columns: one value,
  distinct values and indexes, or a list);
- ``Q``/``q``, ``C``/``c``, ``w``, ``d``: requirements and constraints (only
  their values when they have the pipeline's keys), warnings, and the details
  without what the rest gives back: the chosen backend's name (the
  ``backend_name`` column), ``models_tried`` and ``matched_policies`` when the
  trace and annotations hold them, a reject's ``rejections`` when they are the
  trace's exclusions.

Delta form (version 3): ``{"v": 3, "t": ID, "b": BASE64}``, where BASE64 is
TEXT deflated (raw deflate, no header) with template ``ID``'s text as the
preset dictionary. A template is an earlier decision's TEXT (the first of its
requested model in a process and a calendar month, stored once in its own
table; ``routing.services.decision_templates``): decisions under the same fleet
share almost all of it, so a 1.5 KB TEXT at 50 backends deflates to tens of
bytes. The functions here take the templates as a lookup (``Templates``) and
never read a database.

A row written before this form (``trace`` a list) is read as it is: all three
forms are read, nothing is migrated. Anything the encoder cannot prove it
gives back exactly is stored as it is.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from itertools import filterfalse
from operator import itemgetter
from os.path import commonprefix
from typing import Any

from routing.json_text import json_load, json_text

VERSION = 2
#: The delta form: the compact JSON deflated against a template's text.
DELTA = 3
#: ``template id -> its text`` (a KeyError for an unknown id).
Templates = Callable[[int], str]
#: The JSON columns the compact form replaces, with their empty values.
EMPTY: dict[str, Any] = {
    "requirements": {},
    "constraints": {},
    "annotations": {},
    "trace": [],
    "warnings": [],
    "details": {},
}
#: Annotations kept in the ``annotations`` column (PostgreSQL relabels them).
IN_COLUMN = ("budget_status",)
POLICIES = ("fail_closed", "fail_open")
#: Names every decision repeats (reconcilers, annotation keys, scorers, detail
#: keys), stored as their index here. Append only: stored rows refer to them.
WORDS = (
    "request_analyzer",
    "privacy",
    "budget",
    "capability",
    "selection",
    "alias_chain",
    "matched_policies",
    "backends_not_serving",
    "request_analyzer_excluded",
    "privacy_constraint",
    "privacy_excluded",
    "estimated_cost_usd",
    "budgets",
    "budget_status",
    "budget_resets_on",
    "prefer_cheaper",
    "budget_excluded",
    "required_tier",
    "tier_mode",
    "tier_used",
    "capability_excluded",
    "strategy",
    "scorer_weights",
    "scores",
    "score_breakdown",
    "priority",
    "load",
    "latency",
    "errors",
    "cost",
    "backend",
    "estimated_wait_ms",
    "fallback_backend",
    "error",
    "models_tried",
)
_WORD = {word: i for i, word in enumerate(WORDS)}
_POLICY = {policy: i for i, policy in enumerate(POLICIES)}
#: The keys of ``requirements`` and ``constraints`` as the pipeline writes them:
#: with exactly these, only the values are stored.
REQUIREMENTS = (
    "vision",
    "tools",
    "json_mode",
    "estimated_input_tokens",
    "estimated_output_tokens",
)
CONSTRAINTS = ("privacy", "min_tier", "tier_mode", "max_cost_usd")
BACKEND = ("name", "base_url", "privacy_zone", "capability_tier")
_CONSTRAINT = ["value", "sources"]
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PREFIX = {c: i for i, c in enumerate(_DIGITS)}
_MISSING = object()
_BACKEND = itemgetter("backend")
_REASON = itemgetter("reason")
_ACTION = itemgetter("suggested_action")


def _word(name: Any) -> Any:
    """``name``'s index in ``WORDS``, or ``name`` itself."""
    return _WORD.get(name, name) if type(name) is str else name


def _unword(value: Any) -> Any:
    return WORDS[value] if type(value) is int else value


# -- packed integers --------------------------------------------------------------


def _b36(value: int) -> str:
    if value < 36:
        return _DIGITS[value]
    digits = ""
    while value:
        value, digit = divmod(value, 36)
        digits = _DIGITS[digit] + digits
    return digits


def pack(indexes: Sequence[int]) -> str:
    """Non-negative ints as ``"a,b-c"`` (base 36, ``b-c`` a run of +1 steps)."""
    if not indexes:
        return ""
    first, last = indexes[0], indexes[-1]
    if last - first == len(indexes) - 1 and list(indexes) == list(
        range(first, last + 1)
    ):  # one run (the usual candidate list)
        return _b36(first) if first == last else f"{_b36(first)}-{_b36(last)}"
    items: list[str] = []
    start = previous = first
    for value in indexes[1:]:
        if value == previous + 1:
            previous = value
            continue
        items.append(
            _b36(start) if start == previous else f"{_b36(start)}-{_b36(previous)}"
        )
        start = previous = value
    items.append(
        _b36(start) if start == previous else f"{_b36(start)}-{_b36(previous)}"
    )
    return ",".join(items)


def unpack(text: str) -> list[int]:
    """The ints ``pack`` packed."""
    values: list[int] = []
    if not text:
        return values
    for item in text.split(","):
        first, _, last = item.partition("-")
        start = int(first, 36)
        values.extend(range(start, int(last, 36) + 1) if last else (start,))
    return values


# -- names -------------------------------------------------------------------------


def _code_names(names: list[str]) -> str | list[str]:
    """Front-coded names (see the module doc), or the list when they cannot be."""
    if not names:
        return ""
    if any(" " in name or not name for name in names):
        return names
    limit = len(_DIGITS) - 1
    # Every name shares at least the prefix common to all: compare after it.
    common = min(len(commonprefix(names)), limit)
    parts = [_DIGITS[0] + names[0]]
    previous = names[0]
    for name in names[1:]:
        shared = common
        top = min(len(previous), len(name), limit)
        while shared < top and previous[shared] == name[shared]:
            shared += 1
        parts.append(_DIGITS[shared] + name[shared:])
        previous = name
    return " ".join(parts)


def _decode_names(coded: str | list[str]) -> list[str]:
    if isinstance(coded, list):
        return coded
    names: list[str] = []
    previous = ""
    if not coded:
        return names
    for part in coded.split(" "):
        previous = previous[: _PREFIX[part[0]]] + part[1:]
        names.append(previous)
    return names


# -- columns of values -----------------------------------------------------------


def _key(value: Any) -> Any:
    """A dict key telling apart values JSON tells apart (1, 1.0, True, -0.0)."""
    kind = type(value)
    if kind is float:
        return (kind, repr(value))
    if kind is str or kind is int or kind is bool or value is None:
        return (kind, value)
    raise TypeError  # not a scalar: the caller stores the map as it is


def _column(values: list[Any]) -> list[Any]:
    """``["c", v]`` one value, ``["i", distinct, packed]`` few, ``["l", values]``."""
    kinds = set(map(type, values))
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind is str or kind is int or kind is bool:
        keys: list[Any] = values
    elif kind is float:  # by text: -0.0 is not 0.0
        keys = list(map(repr, values))
    else:
        keys = [_key(v) for v in values]  # mixed: 1, 1.0 and True stay apart
    seen = dict.fromkeys(keys)
    if len(seen) == 1:
        return ["c", values[0]]
    if len(seen) * 2 > len(values):
        return ["l", values]
    index = {key: i for i, key in enumerate(seen)}
    indexes = [index[key] for key in keys]
    distinct: list[Any] = [None] * len(seen)
    for value, i in zip(values, indexes, strict=True):
        distinct[i] = value
    packed = pack(indexes)  # shorter than a list when there are runs
    return ["i", distinct, packed if len(packed) < 2 * len(indexes) else indexes]


def _uncolumn(column: list[Any], count: int) -> list[Any]:
    kind = column[0]
    if kind == "c":
        return [column[1]] * count
    if kind == "i":
        distinct, indexes = column[1], column[2]
        if isinstance(indexes, str):
            indexes = unpack(indexes)
        return [distinct[i] for i in indexes]
    return list(column[1])


# -- encode ------------------------------------------------------------------------


class _Encoder:
    """One decision's names and texts, interned as they are met."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.texts: dict[str, int] = {}

    def ids(self, names: Sequence[str]) -> str:
        table = self.names
        try:
            return pack(list(map(table.__getitem__, names)))  # all known
        except KeyError:
            return pack([table.setdefault(n, len(table)) for n in names])

    def texts_of(self, values: list[Any]) -> list[int]:
        """Each of ``values`` (strings) as its index in ``texts``."""
        if {type(v) for v in values} != {str}:
            raise TypeError
        texts = self.texts
        return [texts.setdefault(v, len(texts)) for v in values]


def encode(
    columns: Mapping[str, Any], *, stated: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``columns`` with their JSON columns in the compact form (see module doc);
    the other columns as they are. ``stated``: the constraints the request
    itself stated (``routing.replay.stated_constraints``), kept for a replay
    (``r``; not part of the full view)."""
    try:
        blob, annotations = _encode(columns)
    except (TypeError, KeyError, AttributeError, IndexError, ValueError):
        return dict(columns)  # an unexpected shape: stored as it is
    if stated is not None:
        blob["r"] = stated
    return {
        **columns,
        **EMPTY,
        "annotations": annotations,
        "trace": {"v": VERSION, "z": json_text(blob)},
    }


def _encode(columns: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    enc = _Encoder()
    trace: list[dict[str, Any]] = columns["trace"]
    stages, afters = _encode_trace(enc, trace, columns.get("model"))
    annotations: Mapping[str, Any] = columns["annotations"]
    entries, kept = _encode_annotations(enc, annotations, trace, afters)
    blob: dict[str, Any] = {}
    requirements: dict[str, Any] = columns["requirements"]
    if list(requirements) == list(REQUIREMENTS):
        blob["Q"] = list(requirements.values())
    elif requirements:
        blob["q"] = requirements
    constraints: dict[str, Any] = columns["constraints"]
    if list(constraints) == list(CONSTRAINTS) and all(
        type(v) is dict and list(v) == _CONSTRAINT for v in constraints.values()
    ):
        blob["C"] = [[v["value"], v["sources"]] for v in constraints.values()]
    elif constraints:
        blob["c"] = constraints
    if columns["warnings"]:
        blob["w"] = columns["warnings"]
    details = _encode_details(columns, annotations, trace)
    if details:
        blob["d"] = details
    blob["s"] = stages
    blob["a"] = entries
    blob["n"] = _code_names(list(enc.names))
    if enc.texts:
        blob["x"] = list(enc.texts)
    return blob, kept


def _encode_trace(
    enc: _Encoder, trace: list[dict[str, Any]], model: Any
) -> tuple[list[list[Any]], list[list[str]]]:
    """Compact trace entries (a None model: the previous entry's, or for the
    first one the row's ``model``) and each entry's ``candidates_after``."""
    stages: list[list[Any]] = []
    afters: list[list[str]] = []
    previous: list[str] | None = None
    for entry in trace:
        if len(entry) != 8:
            raise KeyError("unknown trace entry shape")
        before: list[str] = entry["candidates_before"]
        after: list[str] = entry["candidates_after"]
        excluded: list[dict[str, Any]] = entry["excluded"]
        policy = entry["error_policy"]
        if type(policy) is not str:
            raise TypeError("an error policy that is not a name")
        if entry["model"] is None:
            raise TypeError("a trace entry without a model")
        stage: list[Any] = [
            _word(entry["reconciler"]),
            _POLICY.get(policy, policy),
            None if entry["model"] == model else entry["model"],
            entry["duration_us"],
            None if before == previous else enc.ids(before),
        ]
        if excluded:
            gone = set(map(_BACKEND, excluded))
            derived = list(filterfalse(gone.__contains__, before))
        else:
            derived = before
        stage.append(None if after == derived else enc.ids(after))
        if excluded:
            if any(len(e) != 3 for e in excluded):
                raise KeyError("unknown exclusion shape")
            reasons = list(map(_REASON, excluded))
            actions = list(map(_ACTION, excluded))
            stage.append(
                [
                    enc.ids(list(map(_BACKEND, excluded))),
                    _column(enc.texts_of(reasons)),
                    _column(enc.texts_of(actions)),
                ]
            )
        else:
            stage.append(None)
        stage.append(entry["error"])
        while stage and stage[-1] is None:
            stage.pop()
        stages.append(stage)
        previous = after
        model = entry["model"]
        afters.append(after)
    return stages, afters


def _encode_annotations(
    enc: _Encoder,
    annotations: Mapping[str, Any],
    trace: list[dict[str, Any]],
    afters: list[list[str]],
) -> tuple[list[list[Any]], dict[str, Any]]:
    # The annotations are the final attempt's: match ``<name>_excluded`` to the
    # last trace entry of that reconciler.
    last_stage = {entry["reconciler"]: i for i, entry in enumerate(trace)}
    entries: list[list[Any]] = []
    kept: dict[str, Any] = {}
    word = _WORD.get
    for key, value in annotations.items():
        if key in IN_COLUMN:
            kept[key] = value
            entries.append([word(key, key)])
            continue
        if type(value) is dict and value:
            if key == "scores" and _scores_derived(annotations):
                entries.append([word(key, key), 3, 0])
                continue
            encoded = _encode_map(enc, key, value, trace, afters, last_stage)
            if encoded is not None:
                encoded[0] = word(key, key)
                entries.append(encoded)
                continue
        entries.append([word(key, key), value])
    return entries, kept


def _smart_scores(
    breakdown: dict[str, Any], weights: dict[str, Any]
) -> dict[str, float]:
    """The scores the ``smart`` strategy gives ``breakdown`` with ``weights``:
    the weighted mean in the breakdown's order, a plain running sum, rounded to
    6 places (``routing.pipeline.reconcilers.selection``)."""
    weight_sum = 0.0
    for weight in weights.values():
        weight_sum += weight
    scores: dict[str, float] = {}
    for name, factors in breakdown.items():
        total = 0.0
        for factor, value in factors.items():
            total += weights[factor] * value
        scores[name] = round(total / weight_sum, 6) if weight_sum > 0 else 0.0
    return scores


def _scores_derived(annotations: Mapping[str, Any]) -> bool:
    """Whether ``scores`` is exactly what ``_smart_scores`` makes of the stored
    breakdown and weights (then it is not stored)."""
    scores = annotations["scores"]
    breakdown = annotations.get("score_breakdown")
    weights = annotations.get("scorer_weights")
    if (
        annotations.get("strategy") != "smart"
        or type(scores) is not dict
        or not scores
        or type(breakdown) is not dict
        or type(weights) is not dict
        or list(scores) != list(breakdown)
    ):
        return False
    try:
        derived = _smart_scores(breakdown, weights)
    except (TypeError, KeyError, AttributeError, ZeroDivisionError):
        return False
    return set(map(type, scores.values())) == {float} and list(
        map(repr, scores.values())
    ) == list(map(repr, derived.values()))


def _encode_map(
    enc: _Encoder,
    key: str,
    value: dict[str, Any],
    trace: list[dict[str, Any]],
    afters: list[list[str]],
    last_stage: dict[str, int],
) -> list[Any] | None:
    """A backend-keyed map's compact entry, or None to keep it as it is."""
    names = enc.names
    if key.endswith("_excluded"):
        stage = last_stage.get(key[: -len("_excluded")])
        if stage is not None:
            excluded = trace[stage]["excluded"]
            # The same pairs, in the same order.
            if (
                list(value) == list(map(_BACKEND, excluded))
                and list(value.values()) == list(map(_REASON, excluded))
                and set(map(type, value.values())) == {str}
            ):
                return [key, 1, stage]
    if not names.keys() >= value.keys():
        return None
    keys = list(value)
    values = list(value.values())
    try:
        spec = _encode_values(values)
    except TypeError:
        return None
    where: Any = next(
        (i for i, after in enumerate(afters) if after == keys),
        None,
    )
    return [key, 2, enc.ids(keys) if where is None else where, spec]


def _encode_values(values: list[Any]) -> list[Any]:
    """Columns of a map's values: ``["s", column]`` or ``["d", keys, columns]``."""
    first = values[0]
    if type(first) is dict:
        fields = tuple(first)
        if set(map(type, values)) != {dict} or set(map(tuple, values)) != {fields}:
            raise TypeError  # rows of other keys, or in another order
        columns = [_column(list(map(itemgetter(f), values))) for f in fields]
        return ["d", [_word(f) for f in fields], columns]
    return ["s", _column(values)]


def _encode_details(
    columns: Mapping[str, Any],
    annotations: Mapping[str, Any],
    trace: list[dict[str, Any]],
) -> list[list[Any]]:
    """The details in order as ``[key, value]``, or ``[key]`` where derived."""
    entries: list[list[Any]] = []
    details: Mapping[str, Any] = columns["details"]
    for key, value in details.items():
        if (
            key == "models_tried"
            and value == _models(trace)
            and value
            or (
                key == "matched_policies"
                and "matched_policies" in annotations
                and value == annotations["matched_policies"]
            )
        ):
            entries.append([key])
        elif (
            key == "backend"
            and type(value) is dict
            and next(iter(value), None) == "name"
            and value["name"] == columns.get("backend_name")
        ):
            rest = [v for k, v in value.items() if k != "name"]
            shaped = list(value) == list(BACKEND)
            entries.append([key, 0, rest if shaped else dict(list(value.items())[1:])])
        elif (
            key == "error"
            and type(value) is dict
            and "rejections" in value
            and value["rejections"] == _rejections(trace)
        ):
            entries.append(
                [key, 0, {k: v for k, v in value.items() if k != "rejections"}]
            )
        else:
            entries.append([key, value])
        entries[-1][0] = _word(key)
    return entries


def _models(trace: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(entry["model"] for entry in trace))


def _rejections(trace: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rejections a reject reports, as the trace's exclusions give them."""
    return [
        {
            "backend": e["backend"],
            "reconciler": entry["reconciler"],
            "reason": e["reason"],
            "suggested_action": e["suggested_action"],
            "model": entry["model"],
        }
        for entry in trace
        for e in entry["excluded"]
    ]


# -- expand ------------------------------------------------------------------------


def is_compact(trace: Any) -> bool:
    """Whether a stored ``trace`` column holds the compact form (plain or delta)."""
    return type(trace) is dict and trace.get("v") in (VERSION, DELTA)


def deflate(text: str, template: str) -> str:
    """``text`` deflated against ``template`` (preset dictionary), as base64."""
    return Deflater(template).delta(text)


class Deflater:
    """A raw deflate stream primed with a template's text, copied for each
    text (the dictionary is hashed once, not per decision). The window is the
    smallest holding twice the template (copying a stream costs in proportion
    to its window and hash tables: ~10 us at 50 backends); ``inflate`` reads
    any window."""

    def __init__(self, template: str) -> None:
        data = template.encode()
        window = max(9, min(15, math.ceil(math.log2(max(1, 2 * len(data))))))
        self._primed = zlib.compressobj(
            6, zlib.DEFLATED, -window, 4, zlib.Z_DEFAULT_STRATEGY, data
        )

    def delta(self, text: str) -> str:
        """``text`` deflated against the template, as base64."""
        stream = self._primed.copy()
        packed = stream.compress(text.encode()) + stream.flush()
        return base64.b64encode(packed).decode()


def inflate(delta: str, template: str) -> str:
    """The text ``deflate`` gave ``delta`` for, against the same ``template``."""
    stream = zlib.decompressobj(-15, zdict=template.encode())
    return (stream.decompress(base64.b64decode(delta)) + stream.flush()).decode()


def compact_text(trace: Mapping[str, Any], templates: Templates | None) -> str:
    """The compact JSON of a compact ``trace`` column, either version."""
    if trace["v"] == VERSION:
        text: str = trace["z"]
        return text
    if templates is None:
        raise ValueError("a decision in the delta form is read with its templates")
    try:
        template = templates(trace["t"])
    except KeyError:
        raise LookupError(
            f"decision template {trace['t']} is missing: the decisions stored "
            "against it cannot be read"
        ) from None
    return inflate(trace["b"], template)


def expand(
    row: Mapping[str, Any], templates: Templates | None = None
) -> dict[str, Any]:
    """The full JSON columns (``EMPTY``'s keys) of a stored row, any form.

    ``row`` maps column names to stored values; ``backend_name`` and
    ``model`` are read too. ``templates``: for a row in the delta form.
    """
    trace = row.get("trace")
    if not is_compact(trace):
        return {key: row.get(key) or type(empty)() for key, empty in EMPTY.items()}
    assert isinstance(trace, dict)
    blob: dict[str, Any] = json_load(compact_text(trace, templates))
    names = _decode_names(blob.get("n", ""))
    texts: list[str] = blob.get("x", [])
    full_trace = _expand_trace(blob["s"], names, texts, row.get("model"))
    column: Mapping[str, Any] = row.get("annotations") or {}
    annotations = _expand_annotations(blob["a"], column, full_trace, names)
    details: dict[str, Any] = {}
    for entry in blob.get("d", []):
        key = _unword(entry[0])
        if len(entry) == 2:
            details[key] = entry[1]
        elif key == "models_tried":
            details[key] = _models(full_trace)
        elif key == "matched_policies":
            details[key] = list(annotations["matched_policies"])
        elif key == "backend":
            rest = entry[2]
            if type(rest) is list:
                rest = dict(zip(BACKEND[1:], rest, strict=True))
            details[key] = {"name": row.get("backend_name"), **rest}
        else:  # error: the rejections are the trace's exclusions
            error = dict(entry[2])
            error["rejections"] = _rejections(full_trace)
            details[key] = _ordered_error(error)
    requirements, constraints = _requirements_and_constraints(blob)
    return {
        "requirements": requirements,
        "constraints": constraints,
        "annotations": annotations,
        "trace": full_trace,
        "warnings": blob.get("w", []),
        "details": details,
    }


def _requirements_and_constraints(
    blob: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The requirements and constraints of a compact blob, in their full form."""
    if "Q" in blob:
        requirements = dict(zip(REQUIREMENTS, blob["Q"], strict=True))
    else:
        requirements = blob.get("q", {})
    if "C" in blob:
        constraints = {
            key: {"value": value, "sources": sources}
            for key, (value, sources) in zip(CONSTRAINTS, blob["C"], strict=True)
        }
    else:
        constraints = blob.get("c", {})
    return requirements, constraints


_ERROR_ORDER = ("type", "message", "fields", "rejections", "suggested_actions")


def _ordered_error(error: dict[str, Any]) -> dict[str, Any]:
    ordered = {k: error[k] for k in _ERROR_ORDER if k in error}
    ordered.update(error)
    return ordered


def _expand_trace(
    stages: list[list[Any]], names: list[str], texts: list[str], model: Any
) -> list[dict[str, Any]]:
    trace: list[dict[str, Any]] = []
    previous: list[str] = []
    for stage in stages:
        stage = stage + [None] * (8 - len(stage))
        reconciler, policy, stage_model, duration, before, after, excluded, error = (
            stage
        )
        reconciler = _unword(reconciler)
        if stage_model is not None:
            model = stage_model
        before_names = (
            list(previous) if before is None else [names[i] for i in unpack(before)]
        )
        excluded_json: list[dict[str, Any]] = []
        if excluded is not None:
            backends = [names[i] for i in unpack(excluded[0])]
            count = len(backends)
            reasons = _uncolumn(excluded[1], count)
            actions = _uncolumn(excluded[2], count)
            excluded_json = [
                {
                    "backend": backend,
                    "reason": texts[reason],
                    "suggested_action": texts[action],
                }
                for backend, reason, action in zip(
                    backends, reasons, actions, strict=True
                )
            ]
        if after is None:
            gone = {e["backend"] for e in excluded_json}
            after_names = [n for n in before_names if n not in gone]
        else:
            after_names = [names[i] for i in unpack(after)]
        trace.append(
            {
                "reconciler": reconciler,
                "error_policy": POLICIES[policy] if type(policy) is int else policy,
                "model": model,
                "candidates_before": before_names,
                "candidates_after": after_names,
                "excluded": excluded_json,
                "duration_us": duration,
                "error": error,
            }
        )
        previous = after_names
    return trace


def _expand_annotations(
    entries: list[list[Any]],
    column: Mapping[str, Any],
    trace: list[dict[str, Any]],
    names: list[str],
) -> dict[str, Any]:
    annotations: dict[str, Any] = {}
    derived_scores = False
    for entry in entries:
        key = _unword(entry[0])
        if len(entry) == 1:
            if key in column:
                annotations[key] = column[key]
        elif len(entry) == 2:
            annotations[key] = entry[1]
        elif entry[1] == 3:
            annotations[key] = None  # filled in below, once the breakdown is read
            derived_scores = True
        elif entry[1] == 1:
            annotations[key] = {
                e["backend"]: e["reason"] for e in trace[entry[2]]["excluded"]
            }
        else:
            where, spec = entry[2], entry[3]
            keys = (
                trace[where]["candidates_after"]
                if type(where) is int
                else [names[i] for i in unpack(where)]
            )
            annotations[key] = _expand_values(keys, spec)
    if derived_scores:
        annotations["scores"] = _smart_scores(
            annotations["score_breakdown"], annotations["scorer_weights"]
        )
    for key, value in column.items():  # set by SQL where the pipeline set none
        annotations.setdefault(key, value)
    return annotations


def _expand_values(keys: list[str], spec: list[Any]) -> dict[str, Any]:
    count = len(keys)
    if spec[0] == "s":
        return dict(zip(keys, _uncolumn(spec[1], count), strict=True))
    fields = [_unword(f) for f in spec[1]]
    columns = [_uncolumn(c, count) for c in spec[2]]
    return {
        key: {field: column[i] for field, column in zip(fields, columns, strict=True)}
        for i, key in enumerate(keys)
    }


def decision_view(decision: Any, templates: Templates | None = None) -> dict[str, Any]:
    """A recorded decision's full JSON columns (``EMPTY``'s keys), any form;
    ``decision`` is a ``RoutingDecision`` (any object with those attributes).
    Django code reads through ``routing.services.decision_templates.decision_view``,
    which passes the stored templates."""
    row = {key: getattr(decision, key, None) for key in EMPTY}
    row["backend_name"] = getattr(decision, "backend_name", "")
    row["model"] = getattr(decision, "model", "")
    return expand(row, templates)


def replay_fields(
    blob_text: str, *, backend_name: str, model: str
) -> tuple[str, str, str | None, int | None, int | None, str | None]:
    """What a replay reads of a compact row, without expanding it:
    the requirements and constraints as JSON text, the strategy, a round-robin
    decision's turn, the chosen backend's tier and the constraints the request
    itself stated (JSON text; None when not recorded). ``blob_text`` is the compact
    JSON (the ``z`` of the ``trace`` column). A backtest reads a million of
    these, so only the parts named are decoded (``expand`` gives the same
    values: a test holds them equal)."""
    blob: dict[str, Any] = json_load(blob_text)
    requirements, constraints = _requirements_and_constraints(blob)
    strategy = None
    breakdown = None
    for entry in blob["a"]:
        key = _unword(entry[0])
        if key == "strategy" and len(entry) == 2:
            strategy = entry[1]
        elif key == "score_breakdown":
            breakdown = entry
    tier = None
    for entry in blob.get("d", []):
        if _unword(entry[0]) == "backend" and len(entry) == 3:
            rest = entry[2]
            if type(rest) is list:
                rest = dict(zip(BACKEND[1:], rest, strict=True))
            tier = rest.get("capability_tier")
    turn = None
    if strategy == "round_robin" and breakdown is not None:
        turn = _turn(blob, breakdown, backend_name)
    stated = blob.get("r")
    return (
        json_text(requirements),
        json_text(constraints),
        strategy,
        turn,
        tier,
        None if stated is None else json_text(stated),
    )


def _turn(blob: dict[str, Any], breakdown: list[Any], backend_name: str) -> Any:
    """A round-robin decision's ``score_breakdown[backend_name]["turn"]``, read
    from the compact annotations entry without expanding the trace's texts."""
    if len(breakdown) == 2:  # stored as it is
        value = breakdown[1] or {}
        return (value.get(backend_name) or {}).get("turn")
    names = _decode_names(blob.get("n", ""))
    where, spec = breakdown[2], breakdown[3]
    keys = (
        [names[i] for i in _after_indexes(blob["s"], where)]
        if type(where) is int
        else [names[i] for i in unpack(where)]
    )
    if backend_name not in keys or spec[0] == "s":
        return None
    fields = [_unword(f) for f in spec[1]]
    if "turn" not in fields:
        return None
    column = spec[2][fields.index("turn")]
    return _uncolumn(column, len(keys))[keys.index(backend_name)]


def _after_indexes(stages: list[list[Any]], upto: int) -> list[int]:
    """Trace entry ``upto``'s ``candidates_after`` as indexes into the names
    (``_expand_trace``'s rule for ``before`` and ``after``)."""
    previous: list[int] = []
    for stage in stages[: upto + 1]:
        before = stage[4] if len(stage) > 4 else None
        after = stage[5] if len(stage) > 5 else None
        excluded = stage[6] if len(stage) > 6 else None
        current = previous if before is None else unpack(before)
        if after is not None:
            previous = unpack(after)
        elif excluded is not None:
            gone = set(unpack(excluded[0]))
            previous = [i for i in current if i not in gone]
        else:
            previous = current
    return previous
