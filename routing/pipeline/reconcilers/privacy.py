"""Stage 2: keep only backends whose privacy zone satisfies every constraint."""

from __future__ import annotations

from typing import NamedTuple

from routing.pipeline.intent import (
    CandidateStep,
    Rejection,
    RoutingIntent,
    prepare_step,
)
from routing.pipeline.types import ErrorPolicy, PrivacyLevel


class PrivacyReconciler:
    """Excludes backends whose zone does not satisfy every privacy constraint.

    Fail-closed: if it cannot decide, nothing is routed. A backend without a zone
    is never private. Annotates ``privacy_constraint`` (``unrestricted`` or the
    constraints joined by ``+``, e.g. ``restricted+zone:eu-private``) and
    ``privacy_excluded`` {backend: reason}.
    """

    name = "privacy"
    error_policy = ErrorPolicy.FAIL_CLOSED

    def reconcile(self, intent: RoutingIntent) -> None:
        """Exclude every candidate that fails a privacy constraint."""
        constraints = intent.constraints
        by = intent.current_reconciler
        # Keyed by what the rule depends on, not by the whole constraints object:
        # requests that differ only in cost cap or tier share one entry, so the
        # memo (which holds candidate-set copies) stays as small as the set of
        # privacy constraints in use.
        key = (
            "privacy",
            intent.model,
            constraints.privacy,
            constraints.privacy_sources,
            by,
        )
        memo = intent.index.memo(key, lambda: _privacy(intent, by))
        annotations = intent.annotations
        annotations["privacy_constraint"] = memo.label
        # Merge with an earlier run so running twice changes nothing.
        excluded: dict[str, str] = dict(annotations.get("privacy_excluded", {}))
        if memo.failing and (
            memo.step is None or not intent.apply_step(memo.step, excluded)
        ):
            current = intent.candidates
            failing = [r for r in memo.failing if r.backend in current]
            intent.exclude_rejections(failing, excluded)
        annotations["privacy_excluded"] = excluded


class _Privacy(NamedTuple):
    """What the privacy rule says for one (snapshot, model, privacy constraints and
    their sources, reconciler)."""

    label: str  # the privacy_constraint annotation
    failing: tuple[Rejection, ...]  # every backend offering the model that fails
    step: CandidateStep | None  # the same, from exactly the available backends


def _privacy(intent: RoutingIntent, by: str) -> _Privacy:
    constraints = intent.constraints
    failing = _failing(intent, by) if constraints.privacy else ()
    available, _ = intent.index.availability(intent.model)
    step = prepare_step(available, (r for r in failing if r.backend in available))
    return _Privacy(constraints.privacy_label, failing, step)


def _verdict(
    intent: RoutingIntent,
    key: tuple[str | None, bool],
    sources: str,
    model: str,
) -> tuple[str, str] | None:
    zone, private = key
    for constraint in intent.constraints.privacy:
        if constraint.allows(zone=zone, zone_private=private):
            continue
        where = "has no privacy zone (treated as not private)"
        if zone is not None:
            where = f"is in zone '{zone}'" + (
                "" if private else ", which is not private"
            )
        if constraint.level is PrivacyLevel.ZONE:
            reason = f"{where}; zone '{constraint.zone}' is required ({sources})"
            action = f"Serve '{model}' on a backend in zone '{constraint.zone}'."
        else:
            reason = f"{where}; the request is restricted ({sources})"
            action = f"Serve '{model}' on a backend in a private zone."
        return reason, action
    return None


def _failing(intent: RoutingIntent, by: str) -> tuple[Rejection, ...]:
    """A rejection (by ``by``) of every backend offering the model that fails the
    constraints; depends only on config, model and constraints (memoised)."""
    sources = ", ".join(intent.constraints.privacy_sources)
    model = intent.model
    verdicts: dict[tuple[str | None, bool], tuple[str, str] | None] = {}
    failing: list[Rejection] = []
    for backend in intent.index.serving.get(model, ()):
        key = (backend.privacy_zone, backend.zone_private)
        if key in verdicts:
            verdict = verdicts[key]
        else:
            verdict = verdicts[key] = _verdict(intent, key, sources, model)
        if verdict is not None:
            failing.append(Rejection(backend.name, by, *verdict, model))
    return tuple(failing)
