"""``python manage.py generate_decisions N``: N sample decisions routed on today's fleet."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.services.decision_samples import FleetMissing, decision_samples_generate


class Command(BaseCommand):
    help = (
        "Route N synthetic requests through the real pipeline against today's "
        "configuration and write them as sample decisions (bulk, batched; nothing "
        "reserved or booked). Needs a configured fleet (e.g. `load_demo`)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("count", type=int)
        parser.add_argument(
            "--days", type=int, default=30, help="Spread over the last D days."
        )
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--route-every",
            action="store_true",
            help="Route every request, not each distinct request shape once.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["count"]
        if count < 0 or options["days"] < 0 or options["batch_size"] < 1:
            raise CommandError("N and --days must be >= 0, --batch-size >= 1.")
        started = time.perf_counter()
        step = max(count // 10, options["batch_size"])
        marks = {"next": step}

        def progress(done: int) -> None:
            if done >= marks["next"] or done == count:
                marks["next"] += step
                elapsed = time.perf_counter() - started
                self.stdout.write(f"{done:>10,} written ({elapsed:.0f} s)")

        try:
            run = decision_samples_generate(
                count=count,
                days=options["days"],
                batch_size=options["batch_size"],
                seed=options["seed"],
                route_every=options["route_every"],
                progress=progress,
            )
        except FleetMissing as exc:
            raise CommandError(str(exc)) from None
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {run.written:,} sample decisions in {elapsed:.1f} s "
                f"({run.written / max(elapsed, 1e-9):,.0f}/s; {run.routed:,} "
                f"pipeline runs; config version {run.config_version})."
            )
        )
