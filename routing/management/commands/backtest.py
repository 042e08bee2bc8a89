"""``python manage.py backtest --draft ID|--live --since ISO --until ISO``."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from routing.api.draft_changes import change_write
from routing.errors import NexusError
from routing.services.backtests import backtest_request, backtest_run


def _when(value: str) -> Any:
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"{value!r} is not an ISO date-time with a time zone.")
    return parsed


class Command(BaseCommand):
    help = (
        "Replay the decisions recorded in [since, until) under a draft (or today's "
        "configuration) in the foreground and print the summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--draft", type=int, help="an open draft's id")
        which.add_argument(
            "--live", action="store_true", help="today's configuration as it is"
        )
        parser.add_argument("--since", required=True, type=_when)
        parser.add_argument("--until", required=True, type=_when)
        parser.add_argument("--model")
        parser.add_argument("--client")
        parser.add_argument("--outcome", choices=["route", "queue", "reject"])
        parser.add_argument(
            "--workers", type=int, help="worker processes (default: one per core)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        filters = {
            k: options[k] for k in ("model", "client", "outcome") if options.get(k)
        }
        try:
            backtest, created = backtest_request(
                draft_id=options["draft"],
                since=options["since"],
                until=options["until"],
                filters=filters,
                actor="manage.py backtest",
                enqueue=False,
            )
        except NexusError as exc:
            raise CommandError(exc.message) from None
        if not created:
            raise CommandError(
                f"Backtest {backtest.pk} of the same request is {backtest.status}; "
                f"read it at /api/v1/backtests/{backtest.pk}/."
            )
        started = time.perf_counter()
        bar = _Bar(started)
        finished = backtest_run(
            backtest_id=backtest.pk,
            write=change_write,
            workers=options["workers"],
            progress=bar,
        )
        bar.end()
        if finished is None or finished.status != "done" or finished.summary is None:
            status = "gone" if finished is None else finished.status
            error = "" if finished is None else finished.error
            raise CommandError(f"Backtest {backtest.pk} {status}. {error}".strip())
        elapsed = time.perf_counter() - started
        self.stdout.write(_table(finished.pk, finished.summary, elapsed))


class _Bar:
    """A progress bar on stderr, redrawn at most ten times a second."""

    WIDTH = 30

    def __init__(self, started: float) -> None:
        self.started = started
        self.drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.drawn < 0.1 and done < total:
            return
        self.drawn = now
        share = done / total if total else 1.0
        filled = int(share * self.WIDTH)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{done:,}/{total:,} decisions ({now - self.started:.1f} s)"
        )
        sys.stderr.flush()

    def end(self) -> None:
        sys.stderr.write("\n")


def _table(backtest_id: int, summary: dict[str, Any], elapsed: float) -> str:
    cost = summary["estimated_cost_usd"]
    rows = [
        ("backtest", str(backtest_id)),
        ("decisions", f"{summary['total']:,}"),
        ("unchanged", f"{summary['unchanged']:,}"),
        ("changed", f"{summary['changed']:,}"),
        ("approximate", f"{summary['approximate']:,}"),
        ("distinct inputs", f"{summary.get('distinct_inputs', 0):,}"),
        ("cost before (USD)", f"{cost['before']:.6f}"),
        ("cost after (USD)", f"{cost['after']:.6f}"),
        ("cost delta (USD)", f"{cost['delta']:+.6f}"),
        ("tier downgrades", f"{summary['tier_downgrades']:,}"),
        ("privacy violations", f"{summary['privacy_violations']:,}"),
        ("seconds", f"{elapsed:.1f}"),
    ]
    for title, key in (
        ("outcome", "outcomes"),
        ("newly rejected by", "newly_rejected_by"),
        ("backend shift", "backend_shift"),
    ):
        rows.extend((f"{title} {name}", f"{n:,}") for name, n in summary[key].items())
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows) + "\n"
