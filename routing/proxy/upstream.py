"""What goes to an upstream and what comes back, without any I/O.

- ``chat_url``: ``{base_url}/v1/chat/completions``, or ``{base_url}/chat/completions``
  when ``base_url`` already ends in ``/v1``;
- ``upstream_body``: the client's body with ``model`` set to the resolved model,
  the ``nexus`` object removed and, for streams, ``stream_options.include_usage``;
- ``upstream_headers``: ``Authorization: Bearer`` from the environment variable a
  backend names (the key is read here and nowhere else, never stored);
- ``SseRelay``: cuts an upstream's SSE bytes into events, learns usage and the
  answer's length from them, drops the usage-only chunk Nexus asked for when the
  client did not, and notices a malformed event or ``[DONE]``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import orjson

#: Characters per token when the upstream sends no usage (marked ``estimated``).
CHARS_PER_TOKEN = 4


def chat_url(base_url: str) -> str:
    """The OpenAI-compatible chat endpoint of a backend."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        return f"{base}/chat/completions"
    return f"{base}/v1/chat/completions"


def upstream_body(body: dict[str, Any], *, model: str) -> dict[str, Any]:
    """The body sent upstream (a new dict; ``body`` is left as it was)."""
    sent = {key: value for key, value in body.items() if key != "nexus"}
    sent["model"] = model
    if sent.get("stream"):
        options = sent.get("stream_options")
        sent["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    return sent


def client_wants_usage(body: dict[str, Any]) -> bool:
    """Did the client itself ask for the stream's usage chunk?"""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def upstream_headers(api_key_env: str, request_id: str) -> dict[str, str]:
    """Headers for the upstream call (the key from the environment, if named)."""
    headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
    if api_key_env:
        key = os.environ.get(api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
    return headers


def sent_characters(body: dict[str, Any]) -> int:
    """Characters of text in the messages (for an estimate without usage)."""
    total = 0
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
    return total


def tokens_for(characters: int) -> int:
    """An estimate of tokens for ``characters`` characters (at least 1 if any)."""
    return math.ceil(characters / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Usage:
    """Tokens an answer used and where the figures come from."""

    input_tokens: int
    output_tokens: int
    source: str  # "upstream" or "estimated"


def usage_from(payload: Any) -> tuple[int, int] | None:
    """(prompt_tokens, completion_tokens) of an OpenAI ``usage`` object, if sound."""
    if not isinstance(payload, dict):
        return None
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if (
        isinstance(prompt, int)
        and isinstance(completion, int)
        and not isinstance(prompt, bool)
        and not isinstance(completion, bool)
        and prompt >= 0
        and completion >= 0
    ):
        return prompt, completion
    return None


def answer_characters(payload: Any) -> int:
    """Characters of the answer in a chat completion or one stream chunk."""
    if not isinstance(payload, dict):
        return 0
    total = 0
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        part = choice.get("delta") or choice.get("message") or {}
        if isinstance(part, dict):
            content = part.get("content")
            if isinstance(content, str):
                total += len(content)
    return total


class MalformedEvent(Exception):
    """An upstream stream event that is not JSON (nor ``[DONE]``)."""


@dataclass
class SseRelay:
    """Cuts upstream SSE bytes into whole events and learns from them.

    ``feed(data)`` returns the bytes to pass on to the client now (whole events
    only; a partial event waits for its end; ``[DONE]`` is held back and only
    noted in ``done``). It raises ``MalformedEvent`` on an
    event that is not JSON; events before it in the same data are in
    ``pending`` so they can still be sent.
    """

    keep_usage_chunk: bool
    usage: tuple[int, int] | None = None
    characters: int = 0
    done: bool = False
    pending: bytes = b""
    _buffer: bytes = field(default=b"", repr=False)

    def feed(self, data: bytes) -> bytes:
        self._buffer += data.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                break
            event, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
            try:
                if self._keep(event):
                    out.append(event)
            except MalformedEvent:
                self.pending = b"".join(out)
                raise
        return b"".join(out)

    def _keep(self, event: bytes) -> bool:
        data = b"".join(
            line[5:].lstrip(b" ")
            for line in event.split(b"\n")
            if line.startswith(b"data:")
        )
        if not data:
            return True  # comments and keep-alives pass through
        if data.strip() == b"[DONE]":
            self.done = True  # held back: sent once the request is recorded
            return False
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise MalformedEvent(data[:80].decode("utf-8", "replace")) from None
        found = usage_from(chunk)
        if found is not None:
            self.usage = found
        self.characters += answer_characters(chunk)
        # Drop the usage-only chunk Nexus asked for when the client did not.
        usage_only = isinstance(chunk, dict) and not chunk.get("choices")
        return found is None or self.keep_usage_chunk or not usage_only
