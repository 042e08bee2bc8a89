"""A rate-limit store that cannot be used is reported at start-up, not silently
left to fail open for good."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from routing.checks import shared_state_is_usable


def test_a_writable_embedded_store_passes(settings: Any, tmp_path: Path) -> None:
    settings.NEXUS_REDIS_URL = ""
    settings.NEXUS_SHARED_STATE_FILE = tmp_path / "state.sqlite3"
    assert shared_state_is_usable() == []


def test_an_embedded_store_that_cannot_be_written_is_an_error(
    settings: Any, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    settings.NEXUS_REDIS_URL = ""
    settings.NEXUS_SHARED_STATE_FILE = blocker / "state.sqlite3"
    [message] = shared_state_is_usable()
    assert message.id == "nexus.E003"
    assert message.is_serious()
    assert "fail open" in message.msg


def test_an_unreachable_redis_is_a_warning(settings: Any) -> None:
    settings.NEXUS_REDIS_URL = "redis://127.0.0.1:1/0"  # closed port: refused
    [message] = shared_state_is_usable()
    assert message.id == "nexus.W001"
    assert not message.is_serious()
