"""schemathesis against the served OpenAPI schema: no input produces a server error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from routing.services.api_keys import api_key_issue
from tests.fleet_rows import make_fleet

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ST = Path(sys.executable).with_name("st")


def test_no_generated_request_gets_a_5xx(live_server: Any, tmp_path: Path) -> None:
    make_fleet()
    key = api_key_issue(name="fuzzer", is_admin=True)[1]
    command = [
        str(ST),
        "run",
        f"{live_server.url}/api/v1/schema/",
        "--checks",
        "not_a_server_error",
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        os.environ.get("NEXUS_SCHEMATHESIS_EXAMPLES", "20"),
        "--generation-deterministic",
        "--request-timeout",
        "20",
        "--phases",
        "examples,coverage,fuzzing",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout or " passed" in result.stdout, report
