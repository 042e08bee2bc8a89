"""A faster JSON renderer for the route endpoint's large responses."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer

from routing.json_text import json_bytes


class FastJSONRenderer(JSONRenderer):
    """``JSONRenderer`` through orjson; same media type, same compact output.

    Asked for indentation (``Accept: application/json; indent=2``) or given
    something orjson cannot encode, it renders exactly as DRF's own renderer.
    """

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        if accepted_media_type and "indent" in accepted_media_type:
            return super().render(data, accepted_media_type, renderer_context)
        return json_bytes(data)
