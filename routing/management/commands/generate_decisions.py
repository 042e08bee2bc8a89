"""``python manage.py generate_decisions N``: write N sample decisions fast."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from routing.services.decision_samples import decision_samples_generate


class Command(BaseCommand):
    help = "Write N sample routing decisions (bulk, batched) for explorer load tests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("count", type=int)
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["count"]
        started = time.perf_counter()
        step = max(count // 10, options["batch_size"])
        marks = {"next": step}

        def progress(done: int) -> None:
            if done >= marks["next"] or done == count:
                marks["next"] += step
                elapsed = time.perf_counter() - started
                self.stdout.write(f"{done:>10,} written ({elapsed:.0f} s)")

        written = decision_samples_generate(
            count=count,
            days=options["days"],
            batch_size=options["batch_size"],
            seed=options["seed"],
            progress=progress,
        )
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {written:,} decisions in {elapsed:.1f} s "
                f"({written / max(elapsed, 1e-9):,.0f}/s)."
            )
        )
