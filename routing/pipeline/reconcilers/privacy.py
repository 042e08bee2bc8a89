"""Stage 2: keep only backends whose privacy zone satisfies every constraint."""

from __future__ import annotations

from routing.pipeline.intent import RoutingIntent
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
        intent.annotate("privacy_constraint", constraints.privacy_label)
        # Merge with an earlier run so running twice changes nothing.
        excluded: dict[str, str] = dict(intent.annotations.get("privacy_excluded", {}))
        if constraints.privacy:
            key = (
                "privacy",
                intent.model,
                constraints.privacy,
                constraints.privacy_sources,
            )
            failing_all = intent.index.memo(key, lambda: _failing(intent))
            current = intent.candidates
            failing = [f for f in failing_all if f[0] in current]
            reasons = {name: reason for name, reason, _ in failing}
            for name in intent.exclude_many(failing):
                excluded[name] = reasons[name]
        intent.annotate("privacy_excluded", excluded)


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


def _failing(intent: RoutingIntent) -> tuple[tuple[str, str, str], ...]:
    """(name, reason, action) of every backend offering the model that fails the
    constraints; depends only on config, model and constraints (memoised)."""
    sources = ", ".join(intent.constraints.privacy_sources)
    model = intent.model
    verdicts: dict[tuple[str | None, bool], tuple[str, str] | None] = {}
    failing: list[tuple[str, str, str]] = []
    for backend in intent.index.serving.get(model, ()):
        key = (backend.privacy_zone, backend.zone_private)
        if key in verdicts:
            verdict = verdicts[key]
        else:
            verdict = verdicts[key] = _verdict(intent, key, sources, model)
        if verdict is not None:
            failing.append((backend.name, *verdict))
    return tuple(failing)
