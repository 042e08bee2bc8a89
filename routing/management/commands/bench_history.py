"""``python manage.py bench_history --rows N --months M``: a large history, fast.

PostgreSQL only: copies of a few decisions already in the table, written by
PostgreSQL itself over the last M months (see ``routing/dev/history.py``).
``--drop-oldest`` instead times dropping the oldest month partition (the
retention task's work), with how many rows it held; ``--explain`` prints the
execution time and plan nodes of the explorer's and the API's page queries.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.dev.history import history_drop_oldest, history_explain, history_fill

DROP_TARGET_S = 1.0


class Command(BaseCommand):
    help = "Fill the decision partitions with N copies of real decisions (PostgreSQL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--months", type=int, default=3)
        parser.add_argument(
            "--end",
            type=date.fromisoformat,
            help="Last day (exclusive, UTC) of the history; default now.",
        )
        parser.add_argument("--templates", type=int, default=50)
        parser.add_argument("--chunk", type=int, default=200_000)
        parser.add_argument(
            "--explain",
            action="store_true",
            help="EXPLAIN ANALYZE the explorer's and the API's page queries instead.",
        )
        parser.add_argument(
            "--drop-oldest",
            action="store_true",
            help="Time dropping the oldest partition instead of writing rows.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["explain"]:
                self._explain()
            elif options["drop_oldest"]:
                self._drop()
            else:
                self._fill(options)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None

    def _fill(self, options: dict[str, Any]) -> None:
        if options["rows"] < 1 or options["months"] < 1:
            raise CommandError("--rows and --months must be at least 1")

        def progress(done: int, elapsed: float) -> None:
            self.stdout.write(
                f"{done:>12,} written ({elapsed:.0f} s, {done / elapsed:,.0f}/s)"
            )

        filled = history_fill(
            rows=options["rows"],
            months=options["months"],
            end=(
                datetime.combine(options["end"], time(), tzinfo=UTC)
                if options["end"]
                else None
            ),
            templates=options["templates"],
            chunk=options["chunk"],
            progress=progress,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {filled.rows:,} decisions and {filled.exclusion_rows:,} "
                f"exclusion rows in {filled.seconds:.1f} s "
                f"({filled.rows / filled.seconds:,.0f} decisions/s)."
            )
        )

    def _explain(self) -> None:
        for plan in history_explain():
            self.stdout.write(
                f"{plan.name:40s} {plan.ms:8.1f} ms  {', '.join(plan.nodes)}"
            )

    def _drop(self) -> None:
        dropped = history_drop_oldest()
        total = dropped.detach_s + dropped.drop_s
        verdict = "within" if total < DROP_TARGET_S else "OVER"
        self.stdout.write(
            f"Expired {dropped.name} ({dropped.rows:,} decisions) and its exclusion "
            f"partition: detached in {dropped.detach_s * 1000:.0f} ms (decision "
            f"tables locked), dropped in {dropped.drop_s * 1000:.0f} ms more; "
            f"{total * 1000:.0f} ms in all ({verdict} the {DROP_TARGET_S:.0f} s target)."
        )
