"""json_text: the route hot path's JSON encoder gives what ``json`` would."""

from __future__ import annotations

import json

from routing.json_text import json_bytes, json_text


def test_a_routing_payload_round_trips_unchanged() -> None:
    payload = {
        "outcome": "route",
        "score": 0.123456789,
        "trace": [{"reconciler": "privacy", "excluded": [], "error": None}],
        "model": "modèle-ü",
        "fallback_used": False,
    }
    assert json.loads(json_text(payload)) == payload


def test_values_orjson_refuses_are_encoded_by_the_standard_library() -> None:
    huge = {"tokens": 2**70, 3: "non-string key"}
    assert json.loads(json_bytes(huge)) == {"tokens": 2**70, "3": "non-string key"}
