"""The default reconcilers, in pipeline order.

1. ``request_analyzer`` (fail-closed): alias, policies, constraints,
   requirements, candidates.
2. ``privacy`` (fail-closed): privacy zones.
3. ``budget`` (fail-open): cost estimates, budget limits, cost caps.
4. ``capability`` (fail-open): tier, vision/tools/json mode, context window.
5. ``selection`` (fail-closed, always last): score and decide.
"""

from __future__ import annotations

DEFAULT_ORDER: tuple[str, ...] = (
    "request_analyzer",
    "privacy",
    "budget",
    "capability",
    "selection",
)
