"""The WSGI entry freezes what it loaded out of the garbage collector."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import gc, time
import nexus_site.wsgi
frozen = gc.get_freeze_count()
start = time.perf_counter()
gc.collect()
print(frozen, len(gc.get_objects()), (time.perf_counter() - start) * 1000)
"""


def test_the_loaded_application_is_frozen_out_of_full_collections(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "NEXUS_DATA_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "test",
        "DJANGO_SETTINGS_MODULE": "nexus_site.settings",
    }
    env.pop("DATABASE_URL", None)
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    frozen, tracked, _ms = run.stdout.split()
    # Django, DRF and the app are out of the collector's reach: a full
    # collection walks only what was made after start-up.
    assert int(frozen) > 50_000
    assert int(tracked) < int(frozen) // 10
