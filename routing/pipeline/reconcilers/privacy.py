"""Stage 2: keep only backends whose privacy zone satisfies every constraint."""

from __future__ import annotations

from typing import ClassVar

from routing.pipeline.intent import RoutingIntent
from routing.pipeline.rules import PrivacyConstraint
from routing.pipeline.types import (
    BackendSnapshot,
    ErrorPolicy,
    ModelOffer,
    PrivacyLevel,
)

#: (privacy constraints, where they came from, model)
Question = tuple[tuple[PrivacyConstraint, ...], str, str]


class PrivacyReconciler:
    """Excludes backends whose zone does not satisfy every privacy constraint.

    Fail-closed: if it cannot decide, nothing is routed. A backend without a zone
    is never private. Annotates ``privacy_constraint`` (``unrestricted`` or the
    constraints joined by ``+``, e.g. ``restricted+zone:eu-private``).
    """

    name: ClassVar[str] = "privacy"
    error_policy: ClassVar[ErrorPolicy] = ErrorPolicy.FAIL_CLOSED

    def reconcile(self, intent: RoutingIntent) -> None:
        """Exclude every candidate that fails a privacy constraint."""
        constraints = intent.constraints
        intent.annotate("privacy_constraint", constraints.privacy_label)
        if constraints.privacy:
            sources = ", ".join(constraints.privacy_sources)
            question = (constraints.privacy, sources, intent.model)
            intent.exclude_failing(outside_zone, question)


def outside_zone(
    backend: BackendSnapshot, offer: ModelOffer | None, question: Question
) -> tuple[str, str] | None:
    """Why ``backend``'s zone fails the first constraint it fails, if any."""
    privacy, sources, model = question
    zone = backend.privacy_zone
    for constraint in privacy:
        if constraint.allows(zone=zone, zone_private=backend.zone_private):
            continue
        where = "has no privacy zone (treated as not private)"
        if zone is not None:
            where = f"is in zone '{zone}'" + (
                "" if backend.zone_private else ", which is not private"
            )
        if constraint.level is PrivacyLevel.ZONE:
            return (
                f"{where}; zone '{constraint.zone}' is required ({sources})",
                f"Serve '{model}' on a backend in zone '{constraint.zone}'.",
            )
        return (
            f"{where}; the request is restricted ({sources})",
            f"Serve '{model}' on a backend in a private zone.",
        )
    return None
