"""The directory where Prometheus multiprocess mode keeps each process's metrics.

``PROMETHEUS_MULTIPROC_DIR`` set: every web process writes its counters and
histograms to files there and ``/metrics`` sums the files of every process,
dead ones included, so counters never go backwards while the node runs. The
directory must be emptied when the server starts (old files would be counted
again) and belong to one server only. ``python -m routing.metrics_dir prepare
[PATH]`` creates or empties it (PATH defaults to the variable);
``nexus_site/gunicorn_conf.py`` does the same at start and picks a fresh
temporary directory when the variable is unset.

Neither this module nor its callers may import ``prometheus_client`` before the
variable is set: the library chooses its storage when first imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir() -> Path | None:
    """The configured directory, or None in single-process mode (unset or empty)."""
    value = os.environ.get(VARIABLE, "").strip()
    return Path(value) if value else None


def prepare(path: Path) -> Path:
    """Create ``path`` if needed and remove the metric files (``*.db``) in it;
    anything else there is left alone. Returns ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routing.metrics_dir")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("prepare", help="create or empty the directory")
    command.add_argument("path", nargs="?", help=f"default: ${VARIABLE}")
    args = parser.parse_args(argv)
    path = Path(args.path) if args.path else multiproc_dir()
    if path is None:
        parser.error(f"give a path or set {VARIABLE}")
    prepare(path)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
