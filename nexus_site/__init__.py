"""Nexus project package: wiring only. Importing the Celery app binds @shared_task."""

from __future__ import annotations

from nexus_site.celery import app as celery_app

__all__ = ["celery_app"]
