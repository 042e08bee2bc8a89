"""A database that cannot be reached, for real (no mocks of the DB)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections


@pytest.fixture
def database_unreachable(db: None, tmp_path: Path) -> Iterator[str]:
    """The default connection points at a database nobody serves, for real:
    PostgreSQL on a closed loopback port (connection refused), SQLite at a file
    in a folder that does not exist ("unable to open database file")."""
    original = connections["default"]
    broken = dict(original.settings_dict)
    if original.vendor == "postgresql":
        broken.update(HOST="127.0.0.1", PORT="1")
        # Django keeps one pool per alias: without this the broken wrapper
        # would borrow the working pool's connections.
        broken["OPTIONS"] = {
            k: v for k, v in broken.get("OPTIONS", {}).items() if k != "pool"
        }
    else:
        broken["NAME"] = str(tmp_path / "missing" / "nexus.sqlite3")
    wrapper = original.__class__(broken, alias="default")
    connections["default"] = wrapper
    try:
        yield original.vendor
    finally:
        wrapper.close()
        connections["default"] = original
