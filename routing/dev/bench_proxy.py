"""Proxy benchmark: ``python -m routing.dev.bench_proxy [--quick] [--rounds N]
[--requests N] [--concurrency 1,8,32] [--sides direct,nexus,litellm]``.

One fake upstream on loopback that answers at once
(``python -m routing.dev.fake_upstream --mode ok``), and three ways to reach
it, measured in the same run in alternating rounds (direct, nexus, litellm,
direct, ...) so that background load falls on every side alike:

- ``direct``: the load generator calls the upstream itself;
- ``nexus``: Nexus's production web command (the Procfile's ``web:`` line) on a
  free port, on a throwaway SQLite data directory, one backend
  ``bench-upstream`` (vLLM kind) serving ``bench-model`` at the upstream, calls
  to ``/v1/chat/completions`` with a Nexus API key: the full pipeline, and
  every call recorded as a decision with its usage (``--database-url`` for a
  scratch PostgreSQL database instead);
- ``litellm``: LiteLLM's proxy (``litellm[proxy]``, installed outside the
  project's virtualenv, ``--litellm-site``) with the same model list shape, no
  database and a master key. Skipped, with a line saying so, when it is not
  importable from there.

The load generator is this process (asyncio, with the small HTTP/1.1 client
``Connection``; everything it measures runs in subprocesses): per round, per
(stream, concurrency), per side, a fixed number of requests after an untimed
warm-up on the same keep-alive connections, one per concurrent caller. A streamed
call is read to ``data: [DONE]``: its latency is the time to the last byte, its
TTFB the time to the first body byte. Added latency is a side's p50 minus the
direct call's p50 and its p99 minus the direct p99, at the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from routing.dev.bench_server import pct, scratch_environment

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile"
SIDES = ("direct", "nexus", "litellm")
MODEL = "bench-model"
BACKEND_NAME = "bench-upstream"
KEY_PREFIX = "bench-proxy"
LITELLM_SITE = "/work/litellm-site"
LITELLM_MASTER_KEY = "sk-bench-proxy-master"
UPSTREAM_COMMAND = (
    f"{shlex.quote(sys.executable)} -m routing.dev.fake_upstream "
    f"--port 0 --mode ok --models {MODEL}"
)
BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
    "max_tokens": 16,
}
STARTUP_SECONDS = 120.0
REQUEST_TIMEOUT_S = 60.0


# -- options --------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What to run: rounds x (stream, concurrency) x sides, ``requests`` each."""

    rounds: int = 5
    requests: int = 400
    warmup: int = 40
    concurrency: tuple[int, ...] = (1, 8, 32)
    sides: tuple[str, ...] = SIDES
    streams: tuple[bool, ...] = (False, True)
    upstream_command: str = UPSTREAM_COMMAND
    litellm_site: str = LITELLM_SITE
    database_url: str = ""
    nexus_nodes: int = 1


QUICK = {"rounds": 2, "requests": 40, "warmup": 8}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrency values must be at least 1")
    return values


def _side_list(text: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [value for value in values if value not in SIDES]
    if not values or unknown:
        raise argparse.ArgumentTypeError(
            f"sides must be among {','.join(SIDES)} (got {text!r})"
        )
    # Always measured in the canonical order, each once.
    return tuple(side for side in SIDES if side in values)


def parse_args(argv: Sequence[str]) -> Options:
    """Options from the command line; ``--quick`` shrinks the unset counts."""
    parser = argparse.ArgumentParser(
        prog="python -m routing.dev.bench_proxy",
        description="Added latency of Nexus's proxy and LiteLLM's proxy over a "
        "direct call, against one instant fake upstream.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 rounds x 40 requests, short warm-up"
    )
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 5)")
    parser.add_argument(
        "--requests",
        type=int,
        help="timed requests per round, per side and (stream, concurrency) "
        "(default 400)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        help="untimed requests before each timed batch (default 40)",
    )
    parser.add_argument(
        "--concurrency", type=_int_list, default=Options.concurrency, metavar="1,8,32"
    )
    parser.add_argument(
        "--sides", type=_side_list, default=Options.sides, metavar=",".join(SIDES)
    )
    parser.add_argument(
        "--stream",
        choices=("both", "yes", "no"),
        default="both",
        help="streamed calls, non-streamed calls, or both (default)",
    )
    parser.add_argument(
        "--upstream-command",
        default=UPSTREAM_COMMAND,
        help="command that serves the upstream and prints 'READY <base_url>'",
    )
    parser.add_argument(
        "--litellm-site",
        default=LITELLM_SITE,
        help="directory litellm[proxy] was pip-installed into with --target",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="Nexus's database instead of a throwaway SQLite file (a scratch "
        "PostgreSQL database: the run writes a decision per call into it)",
    )
    parser.add_argument(
        "--nexus-nodes",
        type=int,
        default=1,
        help="serve the nexus side with this many `scripts/serve web` nodes "
        "sharing the web line's workers, the callers split evenly over them "
        "(default 1: the Procfile's web line itself)",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else {}
    rounds = args.rounds if args.rounds is not None else base.get("rounds", 5)
    requests = args.requests if args.requests is not None else base.get("requests", 400)
    warmup = args.warmup if args.warmup is not None else base.get("warmup", 40)
    if rounds < 1 or requests < 1 or warmup < 0:
        parser.error("--rounds and --requests must be at least 1, --warmup at least 0")
    if not 1 <= args.nexus_nodes <= _workers(web_command(0)):
        parser.error("--nexus-nodes must be between 1 and the web line's workers")
    streams = {"both": (False, True), "yes": (True,), "no": (False,)}[args.stream]
    return Options(
        rounds=rounds,
        requests=requests,
        warmup=warmup,
        concurrency=args.concurrency,
        sides=args.sides,
        streams=streams,
        upstream_command=args.upstream_command,
        litellm_site=args.litellm_site,
        database_url=args.database_url,
        nexus_nodes=args.nexus_nodes,
    )


# -- measuring ------------------------------------------------------------------------


@dataclass
class Cell:
    """One side at one (stream, concurrency): every timed call of every round."""

    side: str
    stream: bool
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    first_error: str = ""
    decision_ids: list[str] = field(default_factory=list)
    recorded: int | None = None  # calls whose decision has usage (Nexus only)

    @property
    def calls(self) -> int:
        return len(self.latencies_ms) + self.errors

    @property
    def p50(self) -> float:
        return pct(self.latencies_ms, 0.5)

    @property
    def p99(self) -> float:
        return pct(self.latencies_ms, 0.99)

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def add(self, batch: Batch) -> None:
        """Fold in one timed batch."""
        self.latencies_ms.extend(batch.latencies_ms)
        self.ttfb_ms.extend(batch.ttfb_ms)
        self.seconds += batch.seconds
        self.errors += batch.errors
        self.first_error = self.first_error or batch.first_error
        self.decision_ids.extend(batch.decision_ids)


@dataclass
class Batch:
    """What one ``drive()`` saw."""

    latencies_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    first_error: str = ""
    decision_ids: list[str] = field(default_factory=list)
    sent: int = 0


@dataclass(frozen=True)
class Target:
    """Where a side sends its chat completions, and with which headers."""

    side: str
    url: str
    headers: dict[str, str]
    #: More nodes serving the same path: caller i talks to port i mod n.
    more_ports: tuple[int, ...] = ()

    def request(self, body: bytes) -> bytes:
        """The whole HTTP/1.1 request for ``body``, built once per batch."""
        parts = urlsplit(self.url)
        lines = [
            f"POST {parts.path} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Content-Type: application/json",
            "Accept: */*",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True)
class Reply:
    """What one call saw: status, lower-case headers, the end of the body, and
    the seconds to the first body byte and to the last."""

    status: int
    headers: dict[str, str]
    tail: bytes
    first_byte_s: float
    last_byte_s: float


class _Stale(Exception):
    """A kept-alive connection the server had closed before this request."""


class Connection:
    """One keep-alive HTTP/1.1 connection of the load generator.

    A small asyncio-streams client rather than httpx: on this 2-core machine
    httpx costs about 2 ms of client CPU per call, which would cap the direct
    side and make the client, not the servers, what is measured. It reads
    ``Content-Length`` and chunked bodies; a connection the server closed while
    idle is reopened once, as any pooled client does.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def call(self, request: bytes) -> Reply:
        if self.writer is not None:
            try:
                return await self._exchange(request)
            except _Stale:
                await self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            return await self._exchange(request)
        except _Stale as exc:
            await self.close()
            raise ConnectionError("closed by the server before an answer") from exc

    async def _exchange(self, request: bytes) -> Reply:
        reader, writer = self.reader, self.writer
        assert reader is not None and writer is not None
        clock = time.perf_counter
        started = clock()
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            raise _Stale from exc
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _Stale from exc
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        first_byte = 0.0
        tail = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                first_byte = first_byte or clock()
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers
                    break
                tail = (tail + (await reader.readexactly(size + 2))[:-2])[-256:]
        elif "content-length" in headers:
            tail = (await reader.readexactly(int(headers["content-length"])))[-256:]
            first_byte = clock()
        else:
            tail = (await reader.read())[-256:]
            first_byte = clock()
            headers["connection"] = "close"
        ended = clock()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, headers, tail, first_byte - started, ended - started)


async def _drive(
    target: Target,
    connections: Sequence[Connection],
    stream: bool,
    total: int,
    batch: Batch,
) -> None:
    """``total`` calls, one worker per connection, into ``batch``."""
    request = target.request(json.dumps({**BODY, "stream": stream}).encode())
    counter = iter(range(total))

    async def worker(connection: Connection) -> None:
        for _ in counter:
            batch.sent += 1
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    reply = await connection.call(request)
            except (OSError, EOFError, ValueError, TimeoutError) as exc:
                await connection.close()
                batch.errors += 1
                batch.first_error = batch.first_error or f"{type(exc).__name__}: {exc}"
                continue
            decision = reply.headers.get("x-nexus-decision-id")
            if decision:
                batch.decision_ids.append(decision)
            error = _failure(reply, stream)
            if error:
                batch.errors += 1
                batch.first_error = batch.first_error or error
                continue
            batch.latencies_ms.append(reply.last_byte_s * 1000)
            if stream:
                batch.ttfb_ms.append(reply.first_byte_s * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(connection) for connection in connections))
    batch.seconds = time.perf_counter() - started


def _failure(reply: Reply, stream: bool) -> str:
    """Why a reply does not count as an answered call ("" when it does)."""
    if reply.status != 200:
        return f"HTTP {reply.status}: {reply.tail[-200:]!r}"
    if stream and not reply.tail.rstrip().endswith(b"data: [DONE]"):
        return f"stream without data: [DONE]: {reply.tail[-200:]!r}"
    return ""


def drive(
    target: Target, stream: bool, total: int, concurrency: int, warmup: int
) -> tuple[Batch, Batch]:
    """``warmup`` untimed calls then ``total`` timed calls, ``concurrency`` at a
    time on as many keep-alive connections; return (warm-up, timed)."""
    parts = urlsplit(target.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def both() -> tuple[Batch, Batch]:
        ports = (port, *target.more_ports)
        connections = [
            Connection(host, ports[i % len(ports)]) for i in range(concurrency)
        ]
        warm, timed = Batch(), Batch()
        try:
            if warmup:
                await _drive(target, connections, stream, warmup, warm)
            await _drive(target, connections, stream, total, timed)
        finally:
            for connection in connections:
                await connection.close()
        return warm, timed

    return asyncio.run(both())


# -- subprocesses ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _drain(stream: IO[str] | None) -> None:
    """Keep reading a child's pipe so it never blocks on a full one."""

    def read() -> None:
        for _ in stream or ():
            pass

    threading.Thread(target=read, daemon=True).start()


@contextmanager
def running(
    argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A subprocess for the duration of the block, ended with SIGTERM (then KILL)."""
    out: Any = log.open("w") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        list(argv), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield process
    finally:
        _stop(process, 30)
        if log is not None:
            out.close()


def _stop(process: subprocess.Popen[str], seconds: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``seconds``."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def upstream(command: str, seconds: float = 30.0) -> Iterator[str]:
    """Start the fake upstream; yield its base URL (from its ``READY`` line)."""
    process = subprocess.Popen(
        shlex.split(command),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready: list[str] = []
        reader = threading.Thread(
            target=lambda: ready.append(
                process.stdout.readline() if process.stdout else ""
            ),
            daemon=True,
        )
        reader.start()
        reader.join(seconds)
        line = ready[0].strip() if ready else ""
        if not line.startswith("READY "):
            process.kill()
            _, err = process.communicate(timeout=10)
            raise SystemExit(
                f"upstream did not print READY <base_url> within {seconds:.0f} s "
                f"({command}): {line or err.strip()[-500:]}"
            )
        _drain(process.stdout)
        _drain(process.stderr)
        yield line.split(" ", 1)[1].rstrip("/")
    finally:
        _stop(process, 10)


#: Loopback only: never through an HTTP proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_http(
    url: str, process: subprocess.Popen[str], name: str, log: Path | None
) -> None:
    """Until ``url`` answers 200 (or the process dies or time runs out)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"{name} exited with status {process.returncode}{_log_tail(log)}"
            )
        try:
            with _NO_PROXY.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"{name} did not answer {url} in time{_log_tail(log)}")


def _log_tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return "\n" + log.read_text(errors="replace")[-2000:]


# -- Nexus ----------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


def web_command(port: int, procfile: Path = PROCFILE) -> list[str]:
    """The Procfile's ``web:`` line as argv, serving on ``port``.

    ``${NEXUS_PORT:-8000}`` becomes ``port``; other variables take their value
    from the environment or their default; a leading ``exec`` is dropped and
    the program runs as ``<this python> -m <program>`` so the virtualenv need
    not be on PATH. The one place the benchmark learns how Nexus is served.
    """
    for line in procfile.read_text().splitlines():
        if line.startswith("web:"):
            command = line.removeprefix("web:").strip()
            break
    else:
        raise SystemExit(f"{procfile} has no web: line")

    def substitute(match: re.Match[str]) -> str:
        name = match[1] or match[3]
        if name == "NEXUS_PORT":
            return str(port)
        return os.environ.get(name, match[2] or "")

    argv = shlex.split(_VARIABLE.sub(substitute, command))
    if argv and argv[0] == "exec":
        argv = argv[1:]
    if not argv:
        raise SystemExit(f"{procfile}'s web: line is empty")
    return [sys.executable, "-m", argv[0], *argv[1:]]


@contextmanager
def scratch_django(database_url: str = "") -> Iterator[Path]:
    """A throwaway data directory (SQLite unless ``database_url``, filesystem
    broker) with Django set up on it in this process; the environment the Nexus
    server is given."""
    with scratch_environment(
        prefix="nexus-bench-proxy-", database_url=database_url
    ) as data_dir:
        yield Path(data_dir)


def nexus_prepare(upstream_url: str, key_name: str) -> str:
    """Migrate, register ``bench-upstream`` serving ``bench-model`` at the
    upstream (probed once, as a new backend is), issue a key named ``key_name``;
    return it raw."""
    from django.core.management import call_command

    from routing.models import Backend
    from routing.services.api_keys import api_key_issue
    from routing.services.backends import backend_save
    from routing.services.health import backend_probe

    call_command("migrate", verbosity=0)
    backend = Backend.objects.filter(name=BACKEND_NAME).first() or Backend(
        name=BACKEND_NAME
    )
    backend.kind, backend.base_url, backend.enabled = "vllm", upstream_url, True
    backend.capability_tier, backend.max_concurrency = 3, 64
    backend = backend_save(
        backend=backend,
        models=[{"name": MODEL}],
        actor="system:bench-proxy",
    )
    health = backend_probe(backend_id=backend.pk, timeout=5)
    if health != "healthy":
        raise SystemExit(f"{BACKEND_NAME} probed {health!r} at {upstream_url}")
    _, raw = api_key_issue(name=key_name)
    return str(raw)


@dataclass(frozen=True)
class Recording:
    """What the database holds for the Nexus side's calls."""

    calls: int
    decisions: int
    with_usage: int
    sources: dict[str, int]

    @property
    def complete(self) -> bool:
        return self.calls == self.decisions == self.with_usage

    def line(self) -> str:
        sources = ", ".join(f"{k} {v}" for k, v in sorted(self.sources.items()))
        verdict = "OK" if self.complete else "MISSING"
        return (
            f"Nexus recording: {self.calls} calls -> {self.decisions} decisions, "
            f"{self.with_usage} with usage ({sources or 'none'}): {verdict}"
        )


def nexus_recording(
    key_name: str, calls: int, cells: Sequence[Cell], settle_s: float = 15.0
) -> Recording:
    """Count the key's decisions and their usage (waiting up to ``settle_s`` for
    recording that finishes after the answer); fill each cell's ``recorded``."""
    from django.db.models import Count

    from routing.models import RoutingDecision, UsageReport

    deadline = time.monotonic() + settle_s
    while True:
        decisions = RoutingDecision.objects.filter(client=key_name)
        ids = {str(pk) for pk in decisions.values_list("id", flat=True)}
        usage = UsageReport.objects.filter(decision_id__in=ids)
        with_usage = usage.count()
        if (len(ids) >= calls and with_usage >= calls) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    sources = {
        row["source"]: row["n"]
        for row in usage.values("source").annotate(n=Count("id")).order_by()
    }
    used = {str(d) for d in usage.values_list("decision_id", flat=True)}
    for cell in cells:
        if cell.side == "nexus":
            cell.recorded = sum(1 for d in cell.decision_ids if d in used)
    return Recording(calls, len(ids), with_usage, sources)


# -- LiteLLM --------------------------------------------------------------------------


def litellm_env(site: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PYTHONPATH"] = site
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


def litellm_missing(site: str) -> str | None:
    """Why LiteLLM's proxy cannot run from ``site``, or None when it can."""
    if not Path(site).is_dir():
        return f"{site} does not exist"
    probe = (
        "import importlib.util as u, sys; "
        "m = [n for n in ('litellm', 'litellm.proxy.proxy_cli', 'fastapi', "
        "'uvicorn', 'backoff', 'orjson', 'apscheduler') if u.find_spec(n) is None]; "
        "print(','.join(m)); sys.exit(1 if m else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=litellm_env(site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode == 0:
        return None
    missing = result.stdout.strip() or result.stderr.strip()[-300:]
    return f"not importable from {site} ({missing})"


def litellm_config(upstream_url: str) -> str:
    """The proxy's config.yaml: one deployment of ``bench-model``, a master key."""
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream_url}/v1\n"
        "      api_key: x\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
    )


def nexus_node(port: int, index: int, nodes: int) -> tuple[list[str], dict[str, str]]:
    """Command and environment of Nexus node ``index`` of ``nodes`` on ``port``:
    the Procfile's web line itself for one node; for more, ``scripts/serve
    web`` (the same server) with the web line's workers shared out."""
    env = dict(os.environ)
    if nodes == 1:
        return web_command(port), env
    total = _workers(web_command(0))
    env.update(
        NEXUS_BIND=f"127.0.0.1:{port}",
        NEXUS_WEB_WORKERS=str(total // nodes + (index < total % nodes)),
        NEXUS_MIGRATE="false",  # nexus_prepare migrated
        VIRTUAL_ENV=sys.prefix,
    )
    return [str(ROOT / "scripts" / "serve"), "web"], env


def litellm_command(config: Path, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "litellm.proxy.proxy_cli",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]


def _workers(argv: Sequence[str]) -> int:
    """The worker processes a server command asks for (``--workers N``), else 1."""
    for index, arg in enumerate(argv):
        if arg in ("--workers", "-w") and index + 1 < len(argv):
            return int(argv[index + 1])
        if arg.startswith("--workers="):
            return int(arg.split("=", 1)[1])
    return 1


# -- the run --------------------------------------------------------------------------


@dataclass
class Result:
    options: Options
    cells: list[Cell]
    notes: list[str]
    recording: Recording | None = None


def usable_sides(options: Options) -> tuple[list[str], list[str]]:
    """The sides that can run, and a line for each one that cannot (LiteLLM's
    proxy is optional: not a Nexus dependency)."""
    sides = list(options.sides)
    notes = []
    if "litellm" in sides:
        missing = litellm_missing(options.litellm_site)
        if missing is not None:
            sides.remove("litellm")
            notes.append(
                f"LiteLLM side skipped: litellm[proxy] {missing}; install it with "
                f'pip install --target {options.litellm_site} "litellm[proxy]"'
            )
    return sides, notes


def _cell(cells: list[Cell], side: str, stream: bool, concurrency: int) -> Cell:
    for cell in cells:
        if (cell.side, cell.stream, cell.concurrency) == (side, stream, concurrency):
            return cell
    cell = Cell(side, stream, concurrency)
    cells.append(cell)
    return cell


def run(options: Options) -> Result:
    """Start what the sides need, measure in alternating rounds, check recording."""
    sides, notes = usable_sides(options)
    key_name = f"{KEY_PREFIX}-{uuid.uuid4().hex[:8]}"
    for note in notes:
        print(note, flush=True)
    with ExitStack() as stack:
        base_url = stack.enter_context(upstream(options.upstream_command))
        targets: dict[str, Target] = {
            "direct": Target("direct", f"{base_url}/v1/chat/completions", {})
        }
        work = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-proxy-"))
        )
        if "nexus" in sides:
            stack.enter_context(scratch_django(options.database_url))
            key = nexus_prepare(base_url, key_name)
            database = "DATABASE_URL given" if options.database_url else "SQLite"
            ports = [free_port() for _ in range(options.nexus_nodes)]
            for index, port in enumerate(ports):
                argv, env = nexus_node(port, index, options.nexus_nodes)
                shown = (
                    " ".join(argv[2:])
                    if argv[0] == sys.executable
                    else f"scripts/serve web on port {port}, "
                    f"NEXUS_WEB_WORKERS={env['NEXUS_WEB_WORKERS']}"
                )
                notes.append(f"Nexus: {shown} ({database}, scratch)")
                log = work / f"nexus-{index}.log"
                server = stack.enter_context(running(argv, env=env, log=log))
                wait_http(f"http://127.0.0.1:{port}/healthz", server, "Nexus", log)
            targets["nexus"] = Target(
                "nexus",
                f"http://127.0.0.1:{ports[0]}/v1/chat/completions",
                {"Authorization": f"Bearer {key}"},
                tuple(ports[1:]),
            )
        if "litellm" in sides:
            config = work / "litellm.yaml"
            config.write_text(litellm_config(base_url))
            port = free_port()
            workers = _workers(web_command(0))
            argv = litellm_command(config, port, workers)
            notes.append(f"LiteLLM: {' '.join(argv[2:])} (no database)")
            log = work / "litellm.log"
            server = stack.enter_context(
                running(argv, env=litellm_env(options.litellm_site), log=log)
            )
            wait_http(
                f"http://127.0.0.1:{port}/health/liveliness", server, "LiteLLM", log
            )
            targets["litellm"] = Target(
                "litellm",
                f"http://127.0.0.1:{port}/v1/chat/completions",
                {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
            )
        cells: list[Cell] = []
        nexus_sent = 0
        for index in range(options.rounds):
            print(f"round {index + 1}/{options.rounds}", file=sys.stderr, flush=True)
            for stream in options.streams:
                for concurrency in options.concurrency:
                    for side in sides:
                        warm, timed = drive(
                            targets[side],
                            stream,
                            options.requests,
                            concurrency,
                            options.warmup,
                        )
                        _cell(cells, side, stream, concurrency).add(timed)
                        if side == "nexus":
                            nexus_sent += warm.sent + timed.sent
        result = Result(options, cells, notes)
        if "nexus" in sides:
            result.recording = nexus_recording(key_name, nexus_sent, cells)
        return result


# -- the report -----------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def table(cells: Sequence[Cell], stream: bool, concurrency: int) -> list[str]:
    """One (stream, concurrency): a row per side."""
    rows = [c for c in cells if (c.stream, c.concurrency) == (stream, concurrency)]
    direct = next((c for c in rows if c.side == "direct" and c.latencies_ms), None)
    title = f"{'stream' if stream else 'non-stream'}, concurrency {concurrency}"
    lines = [
        f"-- {title}",
        f"{'side':<9}{'calls':>7}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}"
        f"{'added p99':>11}{'req/s':>9}{'ttfb p50':>10}{'recorded':>10}  errors",
    ]
    for cell in rows:
        if not cell.latencies_ms:
            lines.append(
                f"{cell.side:<9}{cell.calls:>7}  no successful call; "
                f"{cell.errors} errors, first: {cell.first_error[:160]}"
            )
            continue
        added50 = cell.p50 - direct.p50 if direct else None
        added99 = cell.p99 - direct.p99 if direct else None
        ttfb = pct(cell.ttfb_ms, 0.5) if cell.ttfb_ms else None
        recorded = "-" if cell.recorded is None else f"{cell.recorded}/{cell.calls}"
        error = f"  {cell.errors}: {cell.first_error[:120]}" if cell.errors else ""
        lines.append(
            f"{cell.side:<9}{cell.calls:>7}{cell.p50:>9.2f}{cell.p99:>9.2f}"
            f"{_signed(added50):>11}{_signed(added99):>11}{cell.rps:>9.0f}"
            f"{_ms(ttfb):>10}{recorded:>10}{error}"
        )
    return lines


def verdicts(result: Result) -> list[str]:
    """One line per target: Nexus's added p50 and p99 at or below LiteLLM's at
    every (stream, concurrency), its req/s at or above, every call recorded."""
    by_key = {(c.side, c.stream, c.concurrency): c for c in result.cells}
    pairs = []
    for stream in result.options.streams:
        for concurrency in result.options.concurrency:
            nexus = by_key.get(("nexus", stream, concurrency))
            other = by_key.get(("litellm", stream, concurrency))
            if nexus and other:
                pairs.append(
                    (
                        f"{'stream' if stream else 'non-stream'} c={concurrency}",
                        nexus,
                        other,
                    )
                )
    lines = []
    checks: tuple[tuple[str, Callable[[Cell, Cell], bool]], ...] = (
        ("added p50 <= LiteLLM's", lambda n, o: n.p50 <= o.p50),
        ("added p99 <= LiteLLM's", lambda n, o: n.p99 <= o.p99),
        ("req/s >= LiteLLM's", lambda n, o: n.rps >= o.rps),
    )
    for label, holds in checks:
        if not pairs:
            lines.append(
                f"target Nexus {label}: not compared (needs nexus and litellm)"
            )
            continue
        failed = [
            name
            for name, n, o in pairs
            if n.errors
            or o.errors
            or not n.latencies_ms
            or not o.latencies_ms
            or not holds(n, o)
        ]
        verdict = "MET" if not failed else "NOT MET at " + ", ".join(failed)
        lines.append(f"target Nexus {label} at every concurrency: {verdict}")
    if result.recording is None:
        lines.append("target every Nexus call recorded with usage: not measured")
    else:
        verdict = "MET" if result.recording.complete else "NOT MET"
        lines.append(f"target every Nexus call recorded with usage: {verdict}")
    return lines


def report(result: Result) -> str:
    options = result.options
    lines = [
        "Proxy benchmark: one instant fake upstream on loopback, "
        f"{options.rounds} alternating rounds x {options.requests} timed calls per "
        f"side and (stream, concurrency), {options.warmup} untimed warm-up calls "
        "before each batch",
        "latency = send to last byte (streams read to data: [DONE]); ttfb = to the "
        "first body byte; added p50 = side p50 - direct p50, added p99 = side p99 - "
        "direct p99 (same stream mode and concurrency); req/s = successful timed "
        "calls / their wall time",
        *result.notes,
    ]
    for stream in options.streams:
        for concurrency in options.concurrency:
            lines.extend(table(result.cells, stream, concurrency))
    if result.recording is not None:
        lines.append(result.recording.line())
    lines.extend(verdicts(result))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    result = run(options)
    print(report(result))


if __name__ == "__main__":
    main()
