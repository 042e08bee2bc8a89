"""``manage.py load_demo``: create or update the demo fleet and record its demo
traffic once (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from routing.services.config import config_version_current
from routing.services.demo import demo_fleet_load, demo_traffic_record


class Command(BaseCommand):
    help = (
        "Load the demo fleet, aliases, policies and budgets, and record two weeks "
        "of demo traffic with usage (once). Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-traffic",
            action="store_true",
            help="Only the configuration: record no demo traffic.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = demo_fleet_load()
        self.stdout.write(
            f"Demo fleet ready: {count} backends (config version "
            f"{config_version_current()})."
        )
        if not options["no_traffic"]:
            recorded = demo_traffic_record()
            if recorded:
                self.stdout.write(f"Recorded {recorded} demo requests with usage.")
