"""``python manage.py bench_explorer``: server time of the decisions and spend pages.

Renders each page in-process with Django's test client as a logged-in staff
user (the whole request: middleware, session, queries, template), after a
warm-up, and prints the median and p99 in milliseconds. Run it against the
database you want to measure (``DATABASE_URL``), after ``generate_decisions``.
"""

from __future__ import annotations

import base64
import gc
import statistics
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from routing.explorer.forms import cursor_param
from routing.explorer_selectors import DecisionFilters, decision_page
from routing.models import RoutingDecision
from routing.services.api_keys import api_key_issue

BENCH_USER = "bench-explorer"
TARGET_MS = 150.0
#: The decisions API's list, with any filter (issue 15).
API_TARGET_MS = 100.0


def _middle_decision(oldest: datetime, newest: datetime) -> RoutingDecision | None:
    """The newest decision at or before the middle of the recorded history."""
    middle = oldest + (newest - oldest) / 2
    return (
        RoutingDecision.objects.filter(created_at__lte=middle)
        .order_by("-created_at", "-id")
        .first()
    )


def _api_urls() -> list[tuple[str, str]]:
    """The decisions API's list: unfiltered, each filter, a deep cursor page."""
    base = "/api/v1/decisions/"
    urls = [
        ("API: newest 50", base),
        ("API: outcome=reject", f"{base}?outcome=reject"),
        ("API: model=claude-sonnet-4-5", f"{base}?model=claude-sonnet-4-5"),
        ("API: backend=ollama-rack", f"{base}?backend=ollama-rack"),
        ("API: excluded_by=capability", f"{base}?excluded_by=capability"),
        ("API: sample=false", f"{base}?sample=false"),
    ]
    newest = RoutingDecision.objects.order_by("-created_at").first()
    oldest = RoutingDecision.objects.order_by("created_at").first()
    if newest is None or oldest is None:
        return urls
    middle = oldest.created_at + (newest.created_at - oldest.created_at) / 2
    day = urlencode(
        {
            "since": middle.isoformat(),
            "until": (middle + timedelta(days=1)).isoformat(),
        }
    )
    urls += [
        ("API: since/until (one day, mid-history)", f"{base}?{day}"),
        ("API: request_id", f"{base}?request_id={oldest.request_id}"),
    ]
    deep = _middle_decision(oldest.created_at, newest.created_at)
    if deep is not None:
        # DRF's cursor: base64 of the query string of its position.
        position = urlencode({"p": deep.created_at.isoformat()})
        cursor = base64.b64encode(position.encode("ascii")).decode("ascii")
        urls.append(
            (
                "API: deep cursor page (mid-history)",
                f"{base}?{urlencode({'cursor': cursor})}",
            )
        )
    return urls


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


class Command(BaseCommand):
    help = "Time the explorer's decisions, filtered and spend pages (median, p99)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=50)
        parser.add_argument("--warmup", type=int, default=3)

    def _urls(self) -> list[tuple[str, str]]:
        base = reverse("explorer:decisions")
        newest = RoutingDecision.objects.order_by("-created_at").first()
        oldest = RoutingDecision.objects.order_by("created_at").first()
        urls = [
            ("decisions page (newest 50)", base),
            ("htmx fragment (newest 50)", base + "?_hx=1"),
            ("outcome=reject", base + "?outcome=reject"),
            ("model=claude-sonnet-4-5", base + "?model=claude-sonnet-4-5"),
            ("backend=ollama-rack", base + "?backend=ollama-rack"),
            ("excluded_by=capability", base + "?excluded_by=capability"),
            (
                "outcome=reject&excluded_by=privacy",
                base + "?outcome=reject&excluded_by=privacy",
            ),
            ("sample=true (samples only)", base + "?sample=true"),
            ("sample=false (real only)", base + "?sample=false"),
        ]
        if newest and oldest:
            middle = oldest.created_at + (newest.created_at - oldest.created_at) / 2
            since = middle.strftime("%Y-%m-%dT%H:%M")
            until = (middle + (newest.created_at - oldest.created_at) / 30).strftime(
                "%Y-%m-%dT%H:%M"
            )
            urls.append(
                (
                    "time range (one day, mid-history)",
                    f"{base}?since={since}&until={until}",
                )
            )
            urls.append(
                (
                    f"config_version={oldest.config_version} (oldest)",
                    f"{base}?config_version={oldest.config_version}",
                )
            )
            urls.append(("request id search", f"{base}?request_id={oldest.request_id}"))
            page = decision_page(filters=DecisionFilters())
            if page.next_cursor:
                cursor = urlencode({"cursor": cursor_param(page.next_cursor)})
                urls.append(("page 2 (keyset cursor)", f"{base}?{cursor}"))
            deep = _middle_decision(oldest.created_at, newest.created_at)
            if deep is not None:
                cursor = urlencode({"cursor": cursor_param((deep.created_at, deep.pk))})
                urls.append(("deep cursor page (mid-history)", f"{base}?{cursor}"))
                urls.append(
                    (
                        "decision detail page (mid-history)",
                        reverse("explorer:decision", args=[deep.pk]),
                    )
                )
        spend = reverse("explorer:spend")
        urls += [
            ("spend page (30 days, by model)", spend),
            ("spend page (30 days, by client)", f"{spend}?stack=client"),
            ("spend page (90 days, by backend)", f"{spend}?days=90&stack=backend"),
        ]
        return urls

    def handle(self, *args: Any, **options: Any) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username=BENCH_USER, defaults={"is_staff": True}
        )
        client = Client()
        client.force_login(user)
        total = RoutingDecision.objects.count()
        self.stdout.write(
            f"{total:,} decisions on {connection.vendor}; "
            f"{options['runs']} runs per page after {options['warmup']} warm-up runs"
        )
        self.stdout.write(
            f"{'page':<44} {'median ms':>10} {'p99 ms':>10} {'max ms':>10}"
        )
        worst = 0.0
        # Plain static storage: no collectstatic manifest needed to run this.
        storages = {
            **settings.STORAGES,
            "staticfiles": {
                "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
            },
        }
        _, raw_key = api_key_issue(name=f"{BENCH_USER}-{time.time_ns()}", is_admin=True)
        api_headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}
        worst_api = 0.0
        with override_settings(ALLOWED_HOSTS=["testserver"], STORAGES=storages):
            for label, url in self._urls():
                headers = {}
                if url.endswith("?_hx=1"):
                    url, headers = (
                        url.removesuffix("?_hx=1"),
                        {"HTTP_HX_REQUEST": "true"},
                    )
                worst = max(worst, self._time(client, label, url, headers, options))
            api_client = Client()
            for label, url in _api_urls():
                worst_api = max(
                    worst_api, self._time(api_client, label, url, api_headers, options)
                )
        for what, figure, target in (
            ("pages", worst, TARGET_MS),
            ("API list", worst_api, API_TARGET_MS),
        ):
            verdict = "within" if figure <= target else "OVER"
            self.stdout.write(
                f"worst p99 of the {what} {figure:.1f} ms: {verdict} the "
                f"{target:.0f} ms target"
            )

    def _time(
        self,
        client: Client,
        label: str,
        url: str,
        headers: dict[str, str],
        options: dict[str, Any],
    ) -> float:
        """Print the median, p99 and max of GET ``url``; return the p99."""
        timings = []
        for run in range(options["warmup"] + options["runs"]):
            if run == options["warmup"]:
                # As a served process does (``nexus_site.startup``): what is
                # loaded by now is frozen out of the collector's full passes.
                gc.collect()
                gc.freeze()
            started = time.perf_counter()
            response = client.get(url, **headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}")
            if run >= options["warmup"]:
                timings.append(elapsed)
        median = statistics.median(timings)
        p99 = _percentile(timings, 0.99)
        self.stdout.write(
            f"{label:<44} {median:>10.1f} {p99:>10.1f} {max(timings):>10.1f}"
        )
        return p99
