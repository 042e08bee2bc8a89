"""``manage.py load_demo``: create or update the demo fleet (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from routing.services.config import config_version_current
from routing.services.demo import demo_fleet_load


class Command(BaseCommand):
    help = "Load the demo fleet, aliases, policies and budget. Safe to run again."

    def handle(self, *args: Any, **options: Any) -> None:
        count = demo_fleet_load()
        self.stdout.write(
            f"Demo fleet ready: {count} backends (config version "
            f"{config_version_current()})."
        )
