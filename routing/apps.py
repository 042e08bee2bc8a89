"""The single Nexus app."""

from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "routing"
    verbose_name = "Nexus routing"

    def ready(self) -> None:
        from routing import (
            checks,  # noqa: F401  (registers the system check)
            rate_limits,  # noqa: F401  (counts failed logins)
        )
        from routing.api import schema  # noqa: F401  (OpenAPI auth extension)
