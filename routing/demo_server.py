"""Loopback HTTP servers that answer like the demo fleet's local backends.

``scripts/run`` starts them (``python manage.py demo_backends``, the ``demo:`` line
of the ``Procfile``) so the health probes find the demo fleet alive: Ollama-shaped
``/api/tags`` for the two Ollama hosts, OpenAI-shaped ``/v1/models`` for the vLLM
box, each listing exactly the models ``routing/services/demo.py`` configures.
The cloud demo backends point at the real providers and are never probed.

Each also answers ``POST /v1/chat/completions`` (Ollama, vLLM and llama.cpp all serve
it there) with a canned answer naming the backend and model, streamed in about eight
chunks 50 ms apart (or in one piece), with usage as OpenAI reports it; the answer,
chunk and usage shapes come from ``routing.dev.fake_upstream``.

An operator stops one backend by creating ``<NEXUS_DATA_DIR>/demo-backends/<name>.down``
(or ``manage.py demo_backends --stop <name>``): within a second its port closes,
probes fail, and after ``NEXUS_HEALTH_FAILURES_BEFORE_UNHEALTHY`` of them it shows
as unhealthy. Removing the file (``--start <name>``) opens the port again.

No Django models are used here: the servers read only the demo fleet's spec.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from routing.dev.fake_upstream import (
    DONE,
    LAST_CHUNK,
    answer_pieces,
    completion_body,
    error_body,
    http_chunk,
    sse_event,
    stream_chunks,
    usage_for,
    wants_usage,
)

logger = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DOWN_SUFFIX = ".down"
CHAT_PATH = "/v1/chat/completions"
ANSWER_CHUNKS = 8
CHUNK_DELAY_S = 0.05


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


def demo_answer(backend: DemoBackend, model: str) -> str:
    """The canned answer of a demo backend: it says who answered, with which model."""
    return (
        f"Hello from {backend.name} (model {model}). This answer is a demo; "
        f"a real {backend.kind} server would write its own, and Nexus would "
        "stream it to you the same way."
    )


class _Handler(BaseHTTPRequestHandler):
    server: _DemoHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("%s %s", self.server.backend.name, format % args)

    def do_GET(self) -> None:
        backend = self.server.backend
        status, payload = _payload(
            backend.kind, self.path.split("?")[0], backend.models
        )
        self._send_json(status, payload)

    def do_POST(self) -> None:
        backend = self.server.backend
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path = self.path.split("?")[0]
        if path != CHAT_PATH:
            message = f"{path} not found"
            self._send_json(404, error_body(message, "invalid_request_error"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            message = "the body must be a JSON object"
            self._send_json(400, error_body(message, "invalid_request_error"))
            return
        model = body.get("model")
        if model not in backend.models:
            message = f"model {model!r} not found on {backend.name}"
            error = error_body(message, "invalid_request_error", "model_not_found")
            self._send_json(404, error)
            return
        pieces = answer_pieces(demo_answer(backend, model), ANSWER_CHUNKS)
        completion_id = f"chatcmpl-demo-{uuid.uuid4().hex[:16]}"
        usage = usage_for(body, pieces)
        if body.get("stream") is not True:
            answer = completion_body(
                completion_id=completion_id, model=model, pieces=pieces, usage=usage
            )
            self._send_json(200, answer)
            return
        chunks = stream_chunks(
            completion_id=completion_id,
            model=model,
            pieces=pieces,
            usage=usage,
            include_usage=wants_usage(body),
        )
        self._stream([sse_event(chunk) for chunk in chunks] + [DONE], len(pieces))

    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client went away
            self.wfile.write(body)

    def _stream(self, events: list[bytes], delayed: int) -> None:
        """Send ``events`` as a chunked event stream, the first ``delayed`` ones paced.

        HTTP/1.1 framing with ``Connection: close``: no connection outlives its
        answer, so a backend marked down really stops answering.
        """
        self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for index, event in enumerate(events):
                if index < delayed:
                    time.sleep(CHUNK_DELAY_S)
                self.wfile.write(http_chunk(event))
                self.wfile.flush()
            self.wfile.write(LAST_CHUNK)
        except OSError:  # the client went away mid-answer
            self.close_connection = True


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
