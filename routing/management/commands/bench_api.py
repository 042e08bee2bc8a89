"""``manage.py bench_api``: load-test the route API against the framework ceiling.

Starts ``scripts/serve web`` (``--nodes`` of them, sharing ``--workers``) on
loopback against the configured database (point
``DATABASE_URL`` at a scratch database: the run records thousands of
decisions), then drives the same number of requests at the same concurrency,
in alternating rounds, at (1) ``/bench/insert``, a view that INSERTs one
decision row — the framework's ceiling — and (2) ``POST /api/v1/route`` with
the demo fleet, a mix of free local and priced cloud models so reservations
happen.
Prints requests/s, p50 and p99 of each and their ratio, and checks that
N successful route calls left exactly N decisions.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.models import ApiKey, Budget, RoutingDecision
from routing.services.api_keys import api_key_issue
from routing.services.config import config_save

OUTAGE_TYPE = b'"type":"service_unavailable"'

BODIES = [
    {
        "model": "fast",
        "messages": [{"role": "user", "content": "hi " * 200}],
        "nexus": {"privacy": "restricted"},
    },
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "sum " * 300}],
        "max_tokens": 200,
    },
    {"model": "internal-chat", "messages": [{"role": "user", "content": "x" * 900}]},
    {
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": "y" * 500}],
        "max_tokens": 100,
    },
]


@dataclass
class Phase:
    name: str
    latencies_ms: list[float]
    seconds: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def add(self, other: Phase) -> None:
        """Fold in another round of the same endpoint."""
        self.latencies_ms.extend(other.latencies_ms)
        self.seconds += other.seconds
        self.errors += other.errors

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _drive(
    ports: list[int],
    path: str,
    bodies: list[bytes],
    headers: dict[str, str],
    total: int,
    concurrency: int,
    ok: set[int],
) -> Phase:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(total))

    def worker(port: int) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        failed = 0
        for index in counter:
            body = bodies[index % len(bodies)]
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                # A 503 of the database's outage path ("service_unavailable",
                # e.g. no pooled connection within its timeout) records
                # nothing: an error, unlike a recorded reject's 503.
                good = response.status in ok and not (
                    response.status == 503 and OUTAGE_TYPE in answer
                )
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                good = False
            if good:
                mine.append((time.perf_counter() - started) * 1000)
            else:
                failed += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += failed

    # Caller i talks to node i mod N: the load splits evenly over the nodes.
    threads = [
        threading.Thread(target=worker, args=(ports[i % len(ports)],))
        for i in range(concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Phase(path, latencies, time.perf_counter() - started, errors)


ROOT = Path(__file__).resolve().parents[3]

#: Far above what a run spends: the budgets govern and reserve, never exclude.
BENCH_LIMIT = Decimal("1000000")


def _three_budgets(*, client: str) -> None:
    """Limits on ``global``, the ``cloud`` zone budget (the demo's) and one for
    ``client``: a priced route of the bench key is governed by exactly these."""
    rows = {
        "global": {},
        "cloud": {"zones": ["cloud"]},
        "bench-client": {"clients": [client]},
    }
    for budget_name, scope in rows.items():
        budget = Budget.objects.filter(name=budget_name).first() or Budget(
            name=budget_name
        )
        budget.monthly_limit_usd = BENCH_LIMIT
        budget.scope = scope
        config_save(instance=budget, actor="bench_api")


def _serve_web(port: int, workers: int, threads: int | None) -> subprocess.Popen[bytes]:
    """``scripts/serve web`` (the production entrypoint) on ``port`` with
    ``workers`` processes, serving the product plus ``/bench/insert``."""
    env = {
        **os.environ,
        **({"NEXUS_WEB_THREADS": str(threads)} if threads is not None else {}),
        "NEXUS_ROOT_URLCONF": "nexus_site.urls_bench",
        "NEXUS_BIND": f"127.0.0.1:{port}",
        "NEXUS_WEB_WORKERS": str(workers),
        "NEXUS_MIGRATE": "false",  # migrated above
        # As before scripts/serve existed (gunicorn at log level warning); an
        # access-log line per request costs the route call and the ceiling alike.
        "NEXUS_ACCESS_LOG": os.environ.get("NEXUS_ACCESS_LOG", "false"),
        "VIRTUAL_ENV": sys.prefix,
    }
    # Its own output (migrations, collectstatic, gunicorn at INFO) goes to a file.
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the server writes to it
        "w", prefix=f"bench-api-{port}-", suffix=".log", delete=False
    )
    return subprocess.Popen(
        [str(ROOT / "scripts" / "serve"), "web"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


class Command(BaseCommand):
    help = "Route-API throughput and latency against a one-INSERT ceiling."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--requests", type=int, default=3000)
        parser.add_argument("--concurrency", type=int, default=8)
        # gunicorn's own guideline, (2 x cores) + 1 worker processes: the
        # default of scripts/serve web.
        parser.add_argument(
            "--workers", type=int, default=2 * (os.cpu_count() or 1) + 1
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="NEXUS_WEB_THREADS of the nodes (default: the setting's default)",
        )
        parser.add_argument(
            "--nodes",
            type=int,
            default=1,
            help="start this many `scripts/serve web` nodes on one machine and "
            "split --workers and the callers over them (default 1)",
        )
        parser.add_argument(
            "--three-budgets",
            action="store_true",
            help=(
                "route under three governing budgets with limits: global, the "
                "zone budget cloud and a client budget (the bench key); every "
                "priced route reserves on all three"
            ),
        )
        parser.add_argument(
            "--rounds",
            type=int,
            default=5,
            help="alternate the two endpoints this many times (default 5)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["rounds"] <= options["requests"]:
            raise CommandError("--rounds must be between 1 and --requests")
        call_command("migrate", verbosity=0)
        call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
        name = f"bench-{uuid.uuid4().hex[:8]}"
        _, raw = api_key_issue(name=name)
        if options["three_budgets"]:
            _three_budgets(client=name)
        nodes = options["nodes"]
        if not 1 <= nodes <= options["workers"]:
            raise CommandError("--nodes must be between 1 and --workers")
        ports = [_free_port() for _ in range(nodes)]
        servers = [
            _serve_web(
                port,
                options["workers"] // nodes + (i < options["workers"] % nodes),
                options["threads"],
            )
            for i, port in enumerate(ports)
        ]
        try:
            for port in ports:
                self._wait(port)
            self._run(ports, raw, name, options)
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(timeout=30)
            ApiKey.objects.filter(name=name).update(is_active=False)

    def _wait(self, port: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not answer /healthz within 60 s")

    def _run(
        self, ports: list[int], raw: str, name: str, options: dict[str, Any]
    ) -> None:
        total, concurrency = options["requests"], options["concurrency"]
        auth = {"Authorization": f"Bearer {raw}", "Content-Type": "application/json"}
        bodies = [json.dumps(body).encode() for body in BODIES]
        warm = max(100, total // 10)
        _drive(ports, "/bench/insert", [b""], {}, warm, concurrency, {200})
        _drive(ports, "/api/v1/route", bodies, auth, warm, concurrency, {200, 503})
        before = RoutingDecision.objects.filter(client=name).count()
        # Interleaved rounds, so background work (autovacuum, other load on the
        # machine) falls on both endpoints alike rather than on one phase.
        rounds = options["rounds"]
        ceiling = Phase("/bench/insert", [], 0.0, 0)
        routes = Phase("/api/v1/route", [], 0.0, 0)
        for index in range(rounds):
            share = total // rounds + (1 if index < total % rounds else 0)
            ceiling.add(
                _drive(ports, "/bench/insert", [b""], {}, share, concurrency, {200})
            )
            routes.add(
                _drive(
                    ports,
                    "/api/v1/route",
                    bodies,
                    auth,
                    share,
                    concurrency,
                    {200, 503},
                )
            )
        recorded = RoutingDecision.objects.filter(client=name).count() - before
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        limited = list(
            Budget.objects.filter(monthly_limit_usd__isnull=False).values_list(
                "name", flat=True
            )
        )
        self.stdout.write(f"budgets with a limit: {', '.join(limited) or 'none'}")
        self.stdout.write(
            f"database={engine} scripts/serve web nodes={len(ports)} "
            f"workers={options['workers']} in all, concurrency={concurrency} "
            f"requests/endpoint={total} in {rounds} alternating rounds"
        )
        self.stdout.write(
            f"{'endpoint':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        )
        for phase, label in (
            (ceiling, "ceiling: one INSERT"),
            (routes, "POST /api/v1/route"),
        ):
            self.stdout.write(
                f"{label:<28}{phase.rps:>9.0f}{phase.pct(0.5):>9.2f}"
                f"{phase.pct(0.99):>9.2f}{phase.errors:>8}"
            )
        ratio = routes.rps / ceiling.rps
        self.stdout.write(f"route / ceiling = {ratio:.2f} (target >= 0.60)")
        self.stdout.write(
            f"route calls answered: {len(routes.latencies_ms)}, decisions recorded: "
            f"{recorded} -> {'OK' if recorded == len(routes.latencies_ms) else 'MISMATCH'}"
        )
        self.stdout.write(
            f"route mean latency {statistics.mean(routes.latencies_ms):.2f} ms"
        )
