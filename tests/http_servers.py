"""Real HTTP servers on loopback for probe tests: Ollama-, OpenAI- and llama.cpp-shaped.

A ``FakeBackend`` listens on 127.0.0.1 (port 0 = any free port) and answers
according to its ``behaviour``, which a test may change at any time. ``stop()``
closes the port (connections are refused); ``start()`` opens the same port again.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve ``server`` from a daemon thread (stop it with ``stop_serving``)."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return thread


def stop_serving(
    server: ThreadingHTTPServer | None, thread: threading.Thread | None
) -> None:
    """Stop serving and close the port (nothing to do for a server never started)."""
    if server is None:
        return
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:
        fake = self.server.fake
        fake.requests.append(self.path)
        behaviour = fake.behaviour
        if fake.delay_s:
            time.sleep(fake.delay_s)
        if behaviour == "500":
            self._send(500, b'{"error": "boom"}')
        elif behaviour == "garbage":
            self._send(200, b"<html>this is not json")
        elif behaviour == "wrong-shape":
            self._send(200, b'{"unexpected": true}')
        elif behaviour == "loading":
            self._send(503, json.dumps({"status": "loading model"}).encode())
        elif self.path == "/api/tags":
            models = [{"name": name, "model": name, "size": 0} for name in fake.models]
            self._send(200, json.dumps({"models": models}).encode())
        elif self.path == "/v1/models":
            data = [{"id": name, "object": "model"} for name in fake.models]
            self._send(200, json.dumps({"object": "list", "data": data}).encode())
        elif self.path == "/health":
            self._send(200, b'{"status": "ok"}')
        else:
            self._send(404, b'{"error": "not found"}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client timed out and went away
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeBackend


class FakeBackend:
    """One loopback inference server whose answers a test controls."""

    def __init__(self, models: list[str] | None = None) -> None:
        self.models = list(models or ["llama3.1:8b"])
        self.behaviour = "ok"
        self.delay_s = 0.0
        self.requests: list[str] = []
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeBackend:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.fake = self
        self.port = server.server_address[1]
        self._server, self._thread = server, serve_in_thread(server)
        return self

    def stop(self) -> None:
        stop_serving(self._server, self._thread)
        self._server = None


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _WebhookServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver.arrived.set()
        if receiver.delay_s:
            time.sleep(receiver.delay_s)
        status = receiver.next_status()
        receiver.record(
            ReceivedPost(self.path, dict(self.headers.items()), body, status)
        )
        answer = b'{"ok": true}' if 200 <= status < 300 else b'{"error": "boom"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(answer)


class _WebhookServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver


class ReceivedPost:
    """One POST a ``WebhookReceiver`` got, and the status it answered."""

    def __init__(
        self, path: str, headers: dict[str, str], body: bytes, status: int
    ) -> None:
        self.path = path
        self.headers = headers
        self.body = body
        self.status = status

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A loopback webhook endpoint that records every POST.

    It answers the statuses in ``script`` in order, then ``status`` for every
    later POST; ``delay_s`` holds each answer back (to make deliveries overlap).
    """

    def __init__(self, *, script: list[int] | None = None, status: int = 200) -> None:
        self.script = list(script or [])
        self.status = status
        self.delay_s = 0.0
        #: Set when a POST has arrived (before ``delay_s`` holds its answer back).
        self.arrived = threading.Event()
        self.posts: list[ReceivedPost] = []
        self._lock = threading.Lock()
        self._server: _WebhookServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/budget"

    def next_status(self) -> int:
        with self._lock:
            return self.script.pop(0) if self.script else self.status

    def record(self, post: ReceivedPost) -> None:
        with self._lock:
            self.posts.append(post)

    @property
    def delivered(self) -> list[ReceivedPost]:
        """The POSTs answered with a 2xx."""
        with self._lock:
            return [post for post in self.posts if 200 <= post.status < 300]

    def start(self) -> WebhookReceiver:
        server = _WebhookServer(("127.0.0.1", 0), _WebhookHandler)
        server.receiver = self
        self._server, self._thread = server, serve_in_thread(server)
        return self

    def stop(self) -> None:
        stop_serving(self._server, self._thread)
        self._server = None
