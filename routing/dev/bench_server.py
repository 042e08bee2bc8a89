"""In-server benchmark: ``python -m routing.dev.bench_server [--requests N]``.

The pipeline as users meet it. Creates a scratch data directory with a SQLite
database (or uses ``DATABASE_URL`` if set: point it at a scratch database),
migrates, loads the in-process benchmark's 50-backend fleet as rows (same zones,
tiers, capabilities, prices, probed state), its restricted policy and its budget
at the soft limit, issues an API key and starts the production web server
(``gunicorn nexus_site.asgi:application`` with uvicorn workers, (2 x cores) + 1
workers x 2 threads by default, on a free loopback port). Then, in alternating
rounds, it sends dry-run ``POST /api/v1/route`` calls (``"nexus": {"dry_run":
true}``), routes the same request in this process on the same snapshot, and
routes it again in this process with the CPU caches made cold first (8 MB
copied before each call, as a server's other work does between two calls), and
prints p50/p99 of the pipeline's time per call on each side: the sum of the
trace's per-stage ``duration_us`` (what the API reports), side by side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nexus_site.serve import GUNICORN_ASGI

# The fleet and request builders, imported in one place (bench_litellm).
from routing.dev.bench_litellm import pipeline_bench
from routing.pipeline.types import BudgetSnapshot, ConfigSnapshot
from routing.pipeline_build import describe

FLEET_SIZE = 50
CLIENT_NAME = "bench-server"
PRIVACY_HEADER = "X-Nexus-Privacy"


def route_body() -> dict[str, Any]:
    """The benchmark's request as an API body: min_tier 3 in ``nexus``, dry run."""
    request = pipeline_bench.REQUEST
    return {
        **request.body,
        "nexus": {"min_tier": request.min_tier, "dry_run": True},
    }


def route_headers() -> dict[str, str]:
    """Privacy comes from a header, as in the benchmark's request."""
    return {PRIVACY_HEADER: str(pipeline_bench.REQUEST.privacy)}


# -- the fleet as rows ---------------------------------------------------------


def fleet_load(config: ConfigSnapshot, budget: BudgetSnapshot) -> int:
    """Write ``config`` (zones, backends, offers, aliases, policies) and ``budget``
    (its limit and spend) as rows through the configuration service; return the
    new configuration version. Expects a freshly migrated database."""
    from routing.models import (
        Alias,
        Backend,
        BackendModel,
        Budget,
        FallbackChain,
        PrivacyZone,
        TrafficPolicy,
    )
    from routing.services.config import config_save, config_version_current

    actor = "system:bench"
    zones = {zone.name: zone for zone in PrivacyZone.objects.all()}
    for name, private in config.zones.items():
        zone = zones.get(name) or PrivacyZone(name=name)
        zone.private = private
        config_save(instance=zone, actor=actor)
        zones[name] = zone
    for snap in config.backends:
        backend = Backend(
            name=snap.name,
            kind=snap.kind.value,
            base_url=snap.base_url,
            privacy_zone=zones[snap.privacy_zone] if snap.privacy_zone else None,
            capability_tier=snap.capability_tier,
            priority=snap.priority,
            enabled=snap.enabled,
            health=snap.health.value,
            loading_eta_ms=snap.loading_eta_ms,
            pending_requests=snap.pending_requests,
            max_concurrency=snap.max_concurrency,
            latency_ema_ms=snap.latency_ema_ms,
            error_rate=snap.error_rate,
        )
        config_save(instance=backend, actor=actor)
        for offer in snap.models.values():
            row = BackendModel(
                backend=backend,
                name=offer.name,
                context_window=offer.context_window,
                vision=offer.vision,
                tools=offer.tools,
                json_mode=offer.json_mode,
                input_cost_per_1k=Decimal(repr(offer.input_cost_per_1k)),
                output_cost_per_1k=Decimal(repr(offer.output_cost_per_1k)),
            )
            config_save(instance=row, actor=actor)
    for name, target in config.aliases.items():
        config_save(instance=Alias(name=name, target=target), actor=actor)
    for model, chain in config.fallbacks.items():
        config_save(
            instance=FallbackChain(model=model, fallbacks=list(chain)), actor=actor
        )
    for policy in config.policies:
        cap = policy.max_cost_per_request_usd
        row = TrafficPolicy(
            name=policy.name,
            model_pattern=policy.model_pattern,
            order=policy.order,
            privacy=policy.privacy,
            min_tier=policy.min_tier,
            fallback_allowed=policy.fallback_allowed,
            max_cost_per_request_usd=Decimal(repr(cap)) if cap is not None else None,
        )
        config_save(instance=row, actor=actor)
    row = Budget.objects.filter(name=budget.name).first() or Budget(name=budget.name)
    row.monthly_limit_usd = Decimal(repr(budget.monthly_limit_usd))
    row.soft_limit_percent = budget.soft_limit_percent
    row.hard_limit_action = budget.hard_limit_action.value
    config_save(instance=row, actor=actor)
    # Spend is maintained by the ledger, not configuration: set it directly.
    Budget.objects.filter(pk=row.pk).update(
        spent_usd=Decimal(repr(budget.spent_usd)),
        reserved_usd=Decimal(repr(budget.reserved_usd)),
    )
    return config_version_current()


# -- measuring ----------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by nearest rank (``values`` not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Side:
    """Pipeline microseconds per call (sum of the trace's stage durations)."""

    label: str
    samples: list[float] = field(default_factory=list)
    decisions: set[str] = field(default_factory=set)
    errors: int = 0

    def line(self) -> str:
        if not self.samples:
            return f"{self.label:<34}no samples ({self.errors} errors)"
        return (
            f"{self.label:<34}{len(self.samples):>7}{pct(self.samples, 0.5):>10.1f}"
            f"{pct(self.samples, 0.99):>10.1f}   {','.join(sorted(self.decisions))}"
        )


def trace_us(payload: dict[str, Any]) -> float:
    """Sum of the per-stage ``duration_us`` of a decision's trace."""
    return float(sum(entry["duration_us"] for entry in payload["trace"]))


def _decision(payload: dict[str, Any]) -> str:
    backend = payload.get("backend") or {}
    return f"{payload['outcome']}:{backend.get('name', '-')}"


def drive_server(port: int, key: str, total: int, clients: int, side: Side) -> None:
    """``total`` dry-run route calls from ``clients`` concurrent connections."""
    body = json.dumps(route_body()).encode()
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        **route_headers(),
    }
    counter = iter(range(total))
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        seen: set[str] = set()
        failed = 0
        for _ in counter:
            try:
                conn.request("POST", "/api/v1/route", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                failed += 1
                continue
            if response.status not in (200, 503):
                failed += 1
                continue
            payload = json.loads(data)
            mine.append(trace_us(payload))
            seen.add(_decision(payload))
        conn.close()
        with lock:
            side.samples.extend(mine)
            side.decisions.update(seen)
            side.errors += failed

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


#: Copied between calls by the "caches cold" side: more than the CPU's L2 and
#: its share of L3, as the rest of a request's work is in a server.
EVICT = bytearray(8 << 20)


def drive_in_process(total: int, side: Side, *, cold: bool = False) -> None:
    """The same request, parsed the same way, routed ``total`` times in this
    process on the snapshot the server routes on; ``cold``: with ``EVICT``
    copied before each call, so the pipeline's data is no longer in the CPU
    caches (as in a server, where each call follows a request's other work)."""

    from routing.adapters import budget_snapshots, config_snapshot, shared_pipeline
    from routing.api.routing_input import routing_request_from, validated_route_body
    from routing.pipeline import RoutingContext

    request, _ = routing_request_from(
        validated_route_body(route_body()), route_headers()
    )
    context = RoutingContext(config=config_snapshot(), budgets=budget_snapshots())
    pipeline = shared_pipeline()
    for _ in range(total):
        if cold:
            bytes(EVICT)
        payload = pipeline.route(request, context).to_dict()
        side.samples.append(trace_us(payload))
        side.decisions.add(_decision(payload))


# -- the server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_command(
    port: int, workers: int, threads: int, extra: Sequence[str] = ()
) -> list[str]:
    """README's production command (the Procfile's ``web``), bound to ``port``.

    With ``nexus_site.gunicorn_conf``: Prometheus multiprocess mode in
    ``PROMETHEUS_MULTIPROC_DIR`` (emptied at start) or a fresh temporary
    directory. ``threads`` is kept for callers; uvicorn workers run sync views
    in asgiref's thread and ignore it.
    """
    del threads
    return [
        sys.executable,
        "-m",
        *GUNICORN_ASGI,  # the flags scripts/serve web runs with
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        *extra,
    ]


def wait_healthy(port: int, server: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer /healthz within {seconds:.0f} s")


@contextmanager
def served(
    port: int, workers: int, threads: int, extra: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    server = subprocess.Popen(
        gunicorn_command(port, workers, threads, extra), env=dict(os.environ)
    )
    try:
        wait_healthy(port, server, 60)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def scratch_environment(
    *, prefix: str = "nexus-bench-server-", database_url: str | None = None
) -> Iterator[str]:
    """A temporary data dir (SQLite unless ``DATABASE_URL`` is set), settings for a
    loopback run, and Django set up on it.

    ``database_url`` (when not None) replaces ``DATABASE_URL`` ("" = SQLite in
    the data dir) and drops ``CELERY_BROKER_URL`` (the filesystem broker).
    """
    data_dir = tempfile.mkdtemp(prefix=prefix)
    saved = dict(os.environ)
    if database_url is not None:
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("CELERY_BROKER_URL", None)
        if database_url:
            os.environ["DATABASE_URL"] = database_url
    os.environ["NEXUS_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_site.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-server-" + "x" * 40)
    os.environ.setdefault("DJANGO_DEBUG", "false")
    try:
        import django

        django.setup()
        yield data_dir
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(data_dir, ignore_errors=True)


def prepare(size: int = FLEET_SIZE) -> str:
    """Migrate, load the fleet and budget, issue a key; return the raw key."""
    from django.core.management import call_command

    from routing.adapters import config_snapshot_invalidate
    from routing.services.api_keys import api_key_issue

    call_command("migrate", verbosity=0)
    fleet_load(pipeline_bench.build_fleet(size), pipeline_bench.BUDGET)
    config_snapshot_invalidate()
    _, raw = api_key_issue(name=f"{CLIENT_NAME}-{os.getpid()}")
    return raw


@dataclass(frozen=True)
class Options:
    requests: int = 2000
    rounds: int = 5
    clients: int = 1
    workers: int = 2 * (os.cpu_count() or 1) + 1
    threads: int = 2
    warmup: int = 200
    gunicorn_args: tuple[str, ...] = ()


def run(options: Options) -> tuple[Side, Side, Side]:
    """Prepare, serve, measure; return the server side, the in-process side
    and the in-process side with cold caches."""
    server_side = Side("server (dry-run POST /api/v1/route)")
    local_side = Side("in-process (same snapshot)")
    cold_side = Side("in-process, caches cold")
    with scratch_environment():
        key = prepare()
        port = free_port()
        with served(port, options.workers, options.threads, options.gunicorn_args):
            drive_server(port, key, options.warmup, options.clients, Side("warm-up"))
            drive_in_process(options.warmup, Side("warm-up"))
            for index in range(options.rounds):
                share = options.requests // options.rounds + (
                    1 if index < options.requests % options.rounds else 0
                )
                drive_server(port, key, share, options.clients, server_side)
                drive_in_process(share, local_side)
                drive_in_process(share, cold_side, cold=True)
    return server_side, local_side, cold_side


def report(
    options: Options, server_side: Side, local_side: Side, cold_side: Side
) -> str:
    lines = [
        f"Nexus pipeline in the server vs in process, {FLEET_SIZE} backends, "
        "restricted request, tier 3, budget at its soft limit, trace on; "
        f"pipeline {describe()}",
        f"gunicorn workers={options.workers} threads={options.threads} "
        f"clients={options.clients} {' '.join(options.gunicorn_args)}".rstrip(),
        f"{options.requests} calls per side in {options.rounds} alternating rounds; "
        "microseconds = sum of the trace's per-stage duration_us",
        f"{'side':<34}{'calls':>7}{'p50 us':>10}{'p99 us':>10}   decision",
        server_side.line(),
        local_side.line(),
        cold_side.line(),
    ]
    if server_side.samples and local_side.samples:
        ratio = pct(server_side.samples, 0.5) / pct(local_side.samples, 0.5)
        lines.append(f"server p50 / in-process p50 = {ratio:.2f}")
    if cold_side.samples and local_side.samples:
        ratio = pct(cold_side.samples, 0.5) / pct(local_side.samples, 0.5)
        lines.append(f"caches cold p50 / in-process p50 = {ratio:.2f}")
    if server_side.errors:
        lines.append(f"server errors: {server_side.errors}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m routing.dev.bench_server")
    defaults = Options()
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument(
        "--gunicorn-arg",
        action="append",
        default=[],
        help="extra gunicorn argument (repeat), e.g. --gunicorn-arg=--config=x.py",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= args.requests:
        parser.error("--rounds must be between 1 and --requests")
    return Options(
        requests=args.requests,
        rounds=args.rounds,
        clients=args.clients,
        workers=args.workers,
        threads=args.threads,
        warmup=args.warmup,
        gunicorn_args=tuple(args.gunicorn_arg),
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    print(report(options, *run(options)))


if __name__ == "__main__":
    main()
