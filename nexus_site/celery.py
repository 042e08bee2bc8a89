"""The Celery application; configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_site.settings")

app = Celery("nexus_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _pool_process_in_its_own_group(**kwargs: Any) -> None:
    """Keep prefork pool processes out of the worker's process group.

    Process managers stop a worker by signalling its whole group (honcho sends
    SIGTERM to it on Ctrl-C; a terminal sends SIGINT). Pool processes killed by
    that signal abort their tasks and the worker logs an ERROR for each; out of
    the group, only the main process gets it and does a warm shutdown, finishing
    running tasks and stopping the pool itself. They still die with the main
    process (Celery sets SIGKILL as their parent-death signal).
    """
    os.setpgid(0, 0)
