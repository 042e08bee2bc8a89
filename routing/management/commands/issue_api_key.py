"""``manage.py issue_api_key NAME [--admin]``: print a new raw key once, last line."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.services.api_keys import api_key_issue


class Command(BaseCommand):
    help = "Create an API key. Only its hash is stored: copy the key now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="A unique slug naming the client.")
        parser.add_argument(
            "--admin", action="store_true", help="Allow writing configuration too."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            key, raw = api_key_issue(name=options["name"], is_admin=options["admin"])
        except ValidationError as exc:
            messages = "; ".join(
                f"{field}: {' '.join(errors)}"
                for field, errors in exc.message_dict.items()
            )
            raise CommandError(messages) from None
        kind = "admin" if key.is_admin else "client"
        self.stdout.write(f"Issued {kind} API key {key.name!r}. It is shown only once:")
        self.stdout.write(raw)
