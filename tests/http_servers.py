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
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
