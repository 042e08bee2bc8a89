"""Nexus routing: the pipeline and everything around it.

``routing.pipeline`` is imported from its compiled build when there is a
current one (see ``routing.pipeline_build`` and ``NEXUS_PIPELINE``).
"""

from __future__ import annotations

from routing.pipeline_build import activate

activate(__path__)
