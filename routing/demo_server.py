"""Loopback HTTP servers that answer like the demo fleet's local backends.

``scripts/run`` starts them (``python manage.py demo_backends``, the ``demo:`` line
of the ``Procfile``) so the health probes find the demo fleet alive: Ollama-shaped
``/api/tags`` for the two Ollama hosts, OpenAI-shaped ``/v1/models`` for the vLLM
box, each listing exactly the models ``routing/services/demo.py`` configures.
The cloud demo backends point at the real providers and are never probed.

An operator stops one backend by creating ``<NEXUS_DATA_DIR>/demo-backends/<name>.down``
(or ``manage.py demo_backends --stop <name>``): within a second its port closes,
probes fail, and after ``NEXUS_HEALTH_FAILURES_BEFORE_UNHEALTHY`` of them it shows
as unhealthy. Removing the file (``--start <name>``) opens the port again.

No Django models are used here: the servers read only the demo fleet's spec.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DOWN_SUFFIX = ".down"


@dataclass
class DemoBackend:
    """One demo backend to impersonate: its name, kind, port and model names."""

    name: str
    kind: str
    host: str
    port: int
    models: list[str]
    server: ThreadingHTTPServer | None = field(default=None, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)
    failed: str = ""


def demo_backend_specs(names: Iterable[str] | None = None) -> list[DemoBackend]:
    """The demo fleet's loopback backends (optionally only ``names``)."""
    from routing.services.demo import BACKENDS

    wanted = set(names) if names else None
    specs = []
    for spec in BACKENDS:
        url = urlparse(spec["base_url"])
        if url.hostname not in LOOPBACK or (wanted and spec["name"] not in wanted):
            continue
        specs.append(
            DemoBackend(
                name=spec["name"],
                kind=spec["kind"],
                host=url.hostname or "127.0.0.1",
                port=url.port or 80,
                models=[offer["name"] for offer in spec["models"]],
            )
        )
    if wanted and wanted - {s.name for s in specs}:
        unknown = ", ".join(sorted(wanted - {s.name for s in specs}))
        raise ValueError(f"not a local demo backend: {unknown}")
    return specs


def _payload(kind: str, path: str, models: list[str]) -> tuple[int, Any]:
    """The status and JSON body a real server of ``kind`` would send for ``path``."""
    if kind == "ollama":
        if path == "/api/tags":
            tags = [
                {"name": m, "model": m, "size": 0, "details": {"format": "gguf"}}
                for m in models
            ]
            return 200, {"models": tags}
        if path == "/api/version":
            return 200, {"version": "0.0.0-nexus-demo"}
        if path == "/":
            return 200, "Ollama is running"
    else:
        if path in {"/v1/models", "/models"}:
            data = [
                {"id": m, "object": "model", "owned_by": "nexus-demo"} for m in models
            ]
            return 200, {"object": "list", "data": data}
        if path == "/health":
            return 200, {"status": "ok"}
    return 404, {"error": f"{path} not found"}


class _Handler(BaseHTTPRequestHandler):
    server: _DemoHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("%s %s", self.server.backend.name, format % args)

    def do_GET(self) -> None:
        backend = self.server.backend
        status, payload = _payload(
            backend.kind, self.path.split("?")[0], backend.models
        )
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _DemoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    backend: DemoBackend


class DemoFleetServer:
    """Runs one HTTP server per demo backend, honouring ``<name>.down`` markers."""

    def __init__(self, backends: list[DemoBackend], control_dir: Path) -> None:
        self.backends = backends
        self.control_dir = control_dir
        self.control_dir.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()

    def is_marked_down(self, name: str) -> bool:
        return (self.control_dir / f"{name}{DOWN_SUFFIX}").exists()

    def sync(self) -> None:
        """Start or stop each server so that it matches its marker."""
        for backend in self.backends:
            down = self.is_marked_down(backend.name)
            if down and backend.server is not None:
                self._close(backend)
                logger.info("Demo backend %s stopped (marked down)", backend.name)
            elif not down and backend.server is None:
                self._open(backend)

    def _open(self, backend: DemoBackend) -> None:
        try:
            server = _DemoHTTPServer((backend.host, backend.port), _Handler)
        except OSError as exc:
            if backend.failed != str(exc):
                logger.error(
                    "Demo backend %s cannot listen on %s:%s: %s",
                    backend.name,
                    backend.host,
                    backend.port,
                    exc,
                )
            backend.failed = str(exc)
            return
        server.backend = backend
        backend.port = server.server_address[1]
        backend.server, backend.failed = server, ""
        backend.thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"demo-{backend.name}",
            daemon=True,
        )
        backend.thread.start()
        logger.info(
            "Demo backend %s (%s) answering on http://%s:%s with %s",
            backend.name,
            backend.kind,
            backend.host,
            backend.port,
            ", ".join(backend.models),
        )

    def _close(self, backend: DemoBackend) -> None:
        if backend.server is None:
            return
        backend.server.shutdown()
        backend.server.server_close()
        if backend.thread is not None:
            backend.thread.join(timeout=5)
        backend.server = backend.thread = None

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Keep the servers in step with their markers until ``stop()``."""
        while not self._stop.is_set():
            self.sync()
            self._stop.wait(poll_interval)
        for backend in self.backends:
            self._close(backend)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Stop every server now (when not running ``serve_forever``)."""
        for backend in self.backends:
            self._close(backend)
