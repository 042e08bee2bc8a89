"""Compile routing/pipeline with mypyc: ``python -m routing.dev.compile_pipeline``.

``--if-stale`` builds only when there is no current build (see
``routing.pipeline_build``).
"""

from __future__ import annotations

import sys

from routing.pipeline_build import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
