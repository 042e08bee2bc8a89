"""``python -m nexus_site.procfile start -f Procfile``: honcho, with time to stop.

honcho sends SIGKILL 5 s after its SIGTERM. A Celery worker's warm shutdown on the
filesystem broker takes 3-7 s on a busy 2-core machine (it finishes its tasks and
stops its pool), so ``scripts/run`` gives every process up to ``STOP_GRACE_S``.
"""

from __future__ import annotations

import sys

import honcho.manager
from honcho.command import main

STOP_GRACE_S = 30

if __name__ == "__main__":
    honcho.manager.KILL_WAIT = STOP_GRACE_S  # read by honcho's manager loop
    sys.exit(main())
