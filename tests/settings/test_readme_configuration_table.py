"""Every variable in .env.example has a row in README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def env_example_names() -> list[str]:
    text = (ROOT / ".env.example").read_text()
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M)


def test_every_env_example_variable_has_a_row_in_the_readme_table() -> None:
    names = env_example_names()
    assert "NEXUS_PORT" in names and "DJANGO_SECRET_KEY" in names
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in names if f"| `{name}` |" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
