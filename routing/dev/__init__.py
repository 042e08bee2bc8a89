"""Development tools: benchmark, golden comparison (not used by the server)."""

from __future__ import annotations
