"""A faster JSON renderer for the route endpoint's large responses."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer


class FastJSONRenderer(JSONRenderer):
    """``JSONRenderer`` through orjson; same media type, same compact output.

    Asked for indentation (``Accept: application/json; indent=2``) or given
    something orjson cannot encode (a Decimal, a lazy translation), it renders
    exactly as DRF's own renderer.
    """

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        if not (accepted_media_type and "indent" in accepted_media_type):
            try:
                return orjson.dumps(data)
            except TypeError:
                pass
        return super().render(data, accepted_media_type, renderer_context)
