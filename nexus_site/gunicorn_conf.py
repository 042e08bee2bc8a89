"""gunicorn configuration for the web server: ``gunicorn -c
python:nexus_site.gunicorn_conf nexus_site.asgi:application ...``.

Prometheus multiprocess mode for every server started with it: at import
(before gunicorn loads the application, even with ``--preload``) the metrics
directory is ``PROMETHEUS_MULTIPROC_DIR`` emptied, or, when unset, a fresh
temporary directory removed again when the server stops. Workers inherit the
variable; ``child_exit`` drops a dead worker's live gauges (its counters stay,
so totals never go backwards).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from routing.metrics_dir import VARIABLE, multiproc_dir, prepare

_configured = multiproc_dir()
_owned: Path | None = None
if _configured is None:
    _owned = Path(tempfile.mkdtemp(prefix="nexus-metrics-"))
    os.environ[VARIABLE] = str(_owned)
else:
    prepare(_configured)


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: forget its live gauges (counters and histograms stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """The server stops: remove the metrics directory this module created."""
    if _owned is not None:
        shutil.rmtree(_owned, ignore_errors=True)
