"""``manage.py demo_backends``: serve the demo fleet's local backends on loopback.

    manage.py demo_backends                      # all of them, until Ctrl-C
    manage.py demo_backends --only ollama-rack   # just these (repeatable)
    manage.py demo_backends --stop ollama-rack   # mark one down: its port closes
    manage.py demo_backends --start ollama-rack  # bring it back

``--stop``/``--start`` only create or remove ``<NEXUS_DATA_DIR>/demo-backends/<name>.down``,
which the running server watches; ``touch``/``rm`` of that file does the same.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.demo_server import DOWN_SUFFIX, DemoFleetServer, demo_backend_specs


def control_dir() -> Path:
    return Path(settings.DATA_DIR) / "demo-backends"


class Command(BaseCommand):
    help = (
        "Serve Ollama- and OpenAI-shaped model lists for the demo fleet's local "
        "backends on loopback; --stop/--start NAME takes one down or up again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--only", action="append", metavar="NAME", help="serve only these"
        )
        parser.add_argument(
            "--stop", action="append", metavar="NAME", help="mark a backend down"
        )
        parser.add_argument(
            "--start", action="append", metavar="NAME", help="bring a backend back"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        to_stop, to_start = options["stop"] or [], options["start"] or []
        try:
            specs = demo_backend_specs(options["only"] or (to_stop + to_start) or None)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        folder = control_dir()
        if to_stop or to_start:
            folder.mkdir(parents=True, exist_ok=True)
            for name in to_stop:
                (folder / f"{name}{DOWN_SUFFIX}").touch()
                self.stdout.write(f"{name}: marked down (its port closes within 1 s)")
            for name in to_start:
                (folder / f"{name}{DOWN_SUFFIX}").unlink(missing_ok=True)
                self.stdout.write(f"{name}: marked up (its port opens within 1 s)")
            return
        fleet = DemoFleetServer(specs, folder)
        signal.signal(signal.SIGTERM, lambda *_: fleet.stop())
        down = [s.name for s in specs if fleet.is_marked_down(s.name)]
        self.stdout.write(
            f"Serving {len(specs)} demo backend(s); marked down: "
            f"{', '.join(down) or 'none'} (markers in {folder})"
        )
        try:
            fleet.serve_forever()
        except KeyboardInterrupt:
            fleet.close()
