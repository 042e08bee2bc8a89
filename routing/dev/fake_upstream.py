"""A fault-injecting OpenAI-compatible upstream on loopback, for proxy tests and benchmarks.

``FakeUpstream`` is a real HTTP/1.1 server (asyncio streams, keep-alive) running its
own event loop in a daemon thread, so tests in any thread can use it. It answers
``POST /v1/chat/completions`` (and ``/chat/completions``) the way OpenAI does,
streaming and not, or fails in the way its ``mode`` says; a test may change the mode
at any time. ``GET /v1/models`` and ``GET /health`` answer too; anything else is 404.

Modes: ``ok``, ``no_usage``, ``500``, ``429`` (with ``Retry-After``), ``400``,
``hang`` (read the request, answer nothing), ``cut`` (reset the connection after two
streamed chunks, or before any byte of a plain answer) and ``garbage`` (a malformed
event after two chunks). A slow upstream is ``ok`` with ``chunk_delay_s``; a refusing
one is ``stop()``.

The pure functions at the top build answers, chunks and usage; ``routing.demo_server``
reuses them. Benchmarks run it as a process::

    python -m routing.dev.fake_upstream --port 0 --mode ok [--models a,b] [--name X]

which prints ``READY <base_url>`` and serves until SIGTERM or SIGINT.
No Django here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

MODES = ("ok", "no_usage", "500", "429", "400", "hang", "cut", "garbage")
CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
DONE = b"data: [DONE]\n\n"
_WORD = re.compile(r"\s*\S+")
_MAX_HEAD = 64 * 1024
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


# --- Pure answer building (shared with routing.demo_server) -------------------------


def answer_pieces(text: str, count: int) -> list[str]:
    """``text`` in ``count`` pieces that join back to it, repeated first if too short.

    Pieces split at word starts, so ``"".join(pieces)`` is ``text`` (or ``text``
    repeated, separated by spaces, when it has fewer words than ``count``).
    """
    count = max(1, count)
    words = _WORD.findall(text) or [text]
    repeat = _WORD.findall(" " + text) or [" " + text]
    while len(words) < count:
        words.extend(repeat)
    size, extra = divmod(len(words), count)
    pieces, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append("".join(words[start:end]))
        start = end
    return pieces


def prompt_tokens(body: dict[str, Any]) -> int:
    """A deterministic prompt token count: the characters of message contents // 4, at least 1."""
    chars = 0
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    chars += len(part["text"])
    return max(1, chars // 4)


def usage_for(body: dict[str, Any], pieces: Sequence[str]) -> dict[str, int]:
    """OpenAI ``usage`` for answering ``body`` with ``pieces`` (one token per piece)."""
    prompt = prompt_tokens(body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(pieces),
        "total_tokens": prompt + len(pieces),
    }


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether a streaming request asked for the final usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def completion_body(
    *,
    completion_id: str,
    model: str,
    pieces: Sequence[str],
    usage: dict[str, int] | None,
    created: int | None = None,
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` whose message is the joined ``pieces``."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(pieces)},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def stream_chunks(
    *,
    completion_id: str,
    model: str,
    pieces: Sequence[str],
    usage: dict[str, int] | None,
    include_usage: bool,
    created: int | None = None,
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` payloads of a streamed answer, as OpenAI sends them.

    One chunk per piece (the first carries ``delta.role``), a last one with
    ``finish_reason: "stop"`` and, when ``include_usage`` and ``usage`` is known, a
    usage chunk with no choices. With ``include_usage`` every other chunk carries
    ``"usage": null``, as OpenAI's do. ``data: [DONE]`` is not a chunk: see ``DONE``.
    """
    base = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()) if created is None else created,
        "model": model,
    }

    def chunk(delta: dict[str, str], finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        payload = {**base, "choices": [choice]}
        if include_usage:
            payload["usage"] = None
        return payload

    chunks = [
        chunk(
            {"role": "assistant", "content": piece} if i == 0 else {"content": piece},
            None,
        )
        for i, piece in enumerate(pieces)
    ]
    chunks.append(chunk({}, "stop"))
    if include_usage and usage is not None:
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


def sse_event(payload: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``payload`` as JSON."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def http_chunk(data: bytes) -> bytes:
    """``data`` framed as one HTTP/1.1 chunk (never empty: that would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# --- The server -----------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One chat request as received: path, parsed body, lower-case headers, monotonic time."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class _ClientGone(Exception):
    """The client closed or reset the connection before the answer ended."""


class _Connection:
    """One client connection: a read buffer, and a watch for the client leaving."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self.eof = False
        self.aborted = False  # by the server (cut, stop): not the client leaving
        self._pending: asyncio.Task[bytes] | None = None

    async def _more(self, timeout: float | None = None) -> bool:
        """Read more bytes into the buffer; False on EOF or when ``timeout`` passes."""
        if self.eof:
            return False
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.reader.read(65536))
        done, _ = await asyncio.wait({self._pending}, timeout=timeout)
        if not done:
            return False
        task, self._pending = self._pending, None
        try:
            data = task.result()
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    async def read_head(self) -> bytes | None:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > _MAX_HEAD or not await self._more():
                return None
        head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        return head

    async def read_exactly(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not await self._more():
                return None
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def read_chunked(self) -> bytes | None:
        body = bytearray()
        while True:
            while (end := self.buffer.find(b"\r\n")) < 0:
                if not await self._more():
                    return None
            size = int(bytes(self.buffer[:end]).split(b";")[0] or b"0", 16)
            del self.buffer[: end + 2]
            data = await self.read_exactly(size + 2)
            if data is None:
                return None
            if size == 0:
                # Trailers end with an empty line; we sent none of ours, skip theirs.
                while data != b"\r\n":
                    while (end := self.buffer.find(b"\r\n")) < 0:
                        if not await self._more():
                            return None
                    data = bytes(self.buffer[: end + 2])
                    del self.buffer[: end + 2]
                return bytes(body)
            body += data[:-2]

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (forever if infinite); raise ``_ClientGone`` if the client leaves."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 and seconds != float("inf"):
                return
            timeout = None if seconds == float("inf") else remaining
            if not await self._more(timeout):
                if self.eof:
                    raise _ClientGone
                return

    async def send(self, data: bytes) -> None:
        if self.eof:
            raise _ClientGone
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc

    def abort(self) -> None:
        """Reset the connection (RST, not FIN): what a crashed upstream looks like."""
        self.aborted = True
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.writer.transport.abort()

    def forget(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


class FakeUpstream:
    """An OpenAI-compatible chat server on 127.0.0.1 whose failures a test chooses."""

    def __init__(
        self,
        *,
        name: str = "upstream",
        models: Sequence[str] = ("fake-model",),
        port: int = 0,
    ) -> None:
        self.name = name
        self.models = tuple(models)
        self.port = port
        self.mode = "ok"
        self.chunks = 4
        self.chunk_delay_s = 0.0
        self.first_byte_delay_s = 0.0
        self.retry_after = 2
        self.hits: list[Hit] = []
        self.disconnects: list[float] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[_Connection, asyncio.Task[Any]] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Lifecycle

    def _run(self, coroutine: Any) -> Any:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name=f"fake-upstream-{self.name}", daemon=True
            )
            self._loop = loop
            self._thread.start()
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=10)

    def start(self) -> FakeUpstream:
        """Listen (on the same port again after ``stop()``) and return self."""
        if self._server is None:
            self._server = self._run(self._start())
        return self

    async def _start(self) -> asyncio.Server:
        server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True, backlog=512
        )
        self.port = server.sockets[0].getsockname()[1]
        return server

    def stop(self) -> None:
        """Close the port and abort every open connection: new connections are refused."""
        if self._server is not None:
            server, self._server = self._server, None
            self._run(self._stop(server))

    async def _stop(self, server: asyncio.Server) -> None:
        server.close()
        for connection, task in list(self._connections.items()):
            connection.abort()
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), timeout=2)

    def close(self) -> None:
        """Stop, then end the event loop's thread."""
        self.stop()
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Serving

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connection = _Connection(reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections[connection] = task
        try:
            while await self._one_request(connection):
                pass
        except _ClientGone:
            if not connection.aborted:
                with self._lock:
                    self.disconnects.append(time.monotonic())
        except (asyncio.CancelledError, ConnectionError, OSError, ValueError):
            pass  # stopped, reset, or not HTTP: just drop the connection
        finally:
            del self._connections[connection]
            connection.forget()
            if not connection.aborted:
                writer.close()

    async def _one_request(self, connection: _Connection) -> bool:
        """Read and answer one request; False when the connection should end."""
        head = await connection.read_head()
        if head is None:
            return False
        request_line, *lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = request_line.split(" ", 2)
        except ValueError:
            return False
        headers: dict[str, str] = {}
        for line in lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raw = await connection.read_chunked()
        else:
            raw = await connection.read_exactly(int(headers.get("content-length") or 0))
        if raw is None:
            return False
        keep_alive = version == "HTTP/1.1" and (
            headers.get("connection", "").lower() != "close"
        )
        path = target.split("?", 1)[0]
        if path in CHAT_PATHS and method == "POST":
            return await self._chat(connection, path, headers, raw) and keep_alive
        if method == "GET" and path == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": self.name}
                for m in self.models
            ]
            await self._send_json(connection, 200, {"object": "list", "data": data})
        elif method == "GET" and path == "/health":
            await self._send_json(connection, 200, {"status": "ok"})
        else:
            message = f"{method} {path} not found"
            await self._send_json(
                connection, 404, error_body(message, "invalid_request_error")
            )
        return keep_alive

    async def _send_json(
        self,
        connection: _Connection,
        status: int,
        payload: Any,
        extra: Iterable[tuple[str, str]] = (),
    ) -> None:
        body = (
            json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        )
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{key}: {value}" for key, value in extra),
        ]
        await connection.send(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    async def _chat(
        self, connection: _Connection, path: str, headers: dict[str, str], raw: bytes
    ) -> bool:
        """Answer one chat request by ``mode``; False when the connection must end."""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        with self._lock:
            self.hits.append(
                Hit(
                    path,
                    body if isinstance(body, dict) else {},
                    headers,
                    time.monotonic(),
                )
            )
        if not isinstance(body, dict):
            await self._send_json(
                connection,
                400,
                error_body("body is not a JSON object", "invalid_request_error"),
            )
            return True
        mode = self.mode
        if mode == "hang":
            await connection.pause(float("inf"))
            return False
        if self.first_byte_delay_s > 0:
            await connection.pause(self.first_byte_delay_s)
        if mode == "500":
            await self._send_json(
                connection,
                500,
                {"error": {"message": "fake upstream failure", "type": "server_error"}},
            )
            return True
        if mode == "429":
            await self._send_json(
                connection,
                429,
                error_body(
                    "rate limited by fake", "rate_limit_exceeded", "rate_limit_exceeded"
                ),
                [("Retry-After", str(self.retry_after))],
            )
            return True
        if mode == "400":
            await self._send_json(
                connection,
                400,
                error_body("bad request from fake", "invalid_request_error"),
            )
            return True
        requested = body.get("model")
        model = requested if isinstance(requested, str) else self.models[0]
        pieces = answer_pieces(f"Hello from {self.name}.", self.chunks)
        usage = None if mode == "no_usage" else usage_for(body, pieces)
        completion_id = f"chatcmpl-{self.name}-{next(self._ids)}"
        if body.get("stream") is True:
            return await self._stream(
                connection, body, model, pieces, usage, completion_id, mode
            )
        if mode == "cut":
            connection.abort()
            return False
        if self.chunk_delay_s > 0:
            await connection.pause(self.chunk_delay_s * len(pieces))
        if mode == "garbage":
            await self._send_json(connection, 200, b"{not json")
            return True
        answer = completion_body(
            completion_id=completion_id, model=model, pieces=pieces, usage=usage
        )
        await self._send_json(connection, 200, answer)
        return True

    async def _stream(
        self,
        connection: _Connection,
        body: dict[str, Any],
        model: str,
        pieces: list[str],
        usage: dict[str, int] | None,
        completion_id: str,
        mode: str,
    ) -> bool:
        chunks = stream_chunks(
            completion_id=completion_id,
            model=model,
            pieces=pieces,
            usage=usage,
            include_usage=wants_usage(body) and usage is not None,
        )
        await connection.send(
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/event-stream; charset=utf-8\r\n"
            b"Cache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for index, chunk in enumerate(chunks):
            if mode in {"cut", "garbage"} and index == min(2, len(pieces)):
                break
            if self.chunk_delay_s > 0 and index < len(pieces):
                await connection.pause(self.chunk_delay_s)
            await connection.send(http_chunk(sse_event(chunk)))
        else:
            await connection.send(http_chunk(DONE) + LAST_CHUNK)
            return True
        if mode == "cut":
            connection.abort()
            return False
        await connection.send(http_chunk(b"data: {not json\n\n"))
        await connection.pause(0.05)
        await connection.send(LAST_CHUNK)
        return False


# --- Command line (benchmarks) --------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m routing.dev.fake_upstream",
        description="Serve a fake OpenAI-compatible upstream until SIGTERM/SIGINT.",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--models", default="fake-model", help="comma-separated")
    parser.add_argument("--name", default="upstream")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--chunk-delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] or ["fake-model"]
    upstream = FakeUpstream(name=args.name, models=models, port=args.port)
    upstream.mode = args.mode
    upstream.chunks = args.chunks
    upstream.chunk_delay_s = args.chunk_delay_s
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    upstream.start()
    print(f"READY {upstream.base_url}", flush=True)
    try:
        while not done.wait(1.0):
            pass
    finally:
        upstream.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
