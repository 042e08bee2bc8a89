"""The fake upstream answers like OpenAI, fails the way its mode says, and notices clients leaving."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from routing.dev.fake_upstream import FakeUpstream, answer_pieces, prompt_tokens

ROOT = Path(__file__).resolve().parents[2]
MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},  # 9 characters
    {"role": "user", "content": "Say hello to the tests."},  # 23 characters
]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(name="alpha", models=("m-1", "m-2")) as fake:
        yield fake


def sdk(upstream: FakeUpstream, **options: Any) -> openai.OpenAI:
    """The official client pointed at the fake, with no retries of its own."""
    return openai.OpenAI(
        api_key="sk-test", base_url=f"{upstream.base_url}/v1", max_retries=0, **options
    )


def post(upstream: FakeUpstream, body: dict[str, Any]) -> socket.socket:
    """A raw chat request on a fresh connection; the caller reads the answer."""
    raw = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", upstream.port), timeout=3)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: fake\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(raw), raw)
    )
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, str]:
    """Everything the server sends, and how the connection ended ("eof" or "reset")."""
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received, "reset"
        if not data:
            return received, "eof"
        received += data


def test_the_pieces_of_an_answer_join_back_into_its_text() -> None:
    assert answer_pieces("Hello from alpha.", 3) == ["Hello", " from", " alpha."]
    assert answer_pieces("Hello from alpha.", 2) == ["Hello from", " alpha."]
    four = answer_pieces("Hello from alpha.", 4)
    assert len(four) == 4
    assert "".join(four) == "Hello from alpha. Hello from alpha."


def test_prompt_tokens_count_the_characters_of_every_message_content() -> None:
    assert prompt_tokens({"messages": MESSAGES}) == (9 + 23) // 4
    parts = [{"role": "user", "content": [{"type": "text", "text": "x" * 40}]}]
    assert prompt_tokens({"messages": parts}) == 10
    assert prompt_tokens({"messages": []}) == 1


def test_a_plain_answer_carries_the_request_model_and_deterministic_usage(
    upstream: FakeUpstream,
) -> None:
    answer = sdk(upstream).chat.completions.create(model="m-2", messages=MESSAGES)

    assert answer.object == "chat.completion"
    assert answer.model == "m-2"
    assert answer.choices[0].message.content == "Hello from alpha. Hello from alpha."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
        answer.usage.total_tokens,
    ) == (8, 4, 12)


def test_a_stream_without_include_usage_has_no_usage_chunk(
    upstream: FakeUpstream,
) -> None:
    upstream.chunks = 3
    chunks = list(
        sdk(upstream).chat.completions.create(
            model="m-1", messages=MESSAGES, stream=True
        )
    )

    assert [c.choices[0].delta.content for c in chunks[:-1]] == [
        "Hello",
        " from",
        " alpha.",
    ]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[1].choices[0].delta.role is None
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None and c.choices for c in chunks)


def test_a_stream_with_include_usage_ends_with_a_usage_chunk_without_choices(
    upstream: FakeUpstream,
) -> None:
    chunks = list(
        sdk(upstream).chat.completions.create(
            model="m-1",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    *answer, last = chunks
    assert len(answer) == 5  # four pieces and the finish
    assert answer[-1].choices[0].finish_reason == "stop"
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (8, 4)


def test_a_complete_stream_is_chunked_and_ends_with_done(
    upstream: FakeUpstream,
) -> None:
    with post(upstream, {"model": "m", "stream": True}) as sock:
        upstream_answer = b""
        while not upstream_answer.endswith(b"0\r\n\r\n"):
            upstream_answer += sock.recv(65536)

    head, _, body = upstream_answer.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert b"Content-Type: text/event-stream" in head
    assert body.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert body.count(b"data: {") == 5


def test_the_no_usage_mode_never_reports_usage(upstream: FakeUpstream) -> None:
    upstream.mode = "no_usage"
    client = sdk(upstream)

    plain = client.chat.completions.create(model="m", messages=MESSAGES)
    streamed = list(
        client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert plain.usage is None
    assert plain.choices[0].message.content
    assert all(c.usage is None and c.choices for c in streamed)


def test_a_429_says_when_to_retry(upstream: FakeUpstream) -> None:
    upstream.mode = "429"
    upstream.retry_after = 7

    with pytest.raises(openai.RateLimitError) as caught:
        sdk(upstream).chat.completions.create(model="m", messages=MESSAGES)

    assert caught.value.response.headers["retry-after"] == "7"


def test_a_500_is_an_internal_server_error_for_the_sdk(upstream: FakeUpstream) -> None:
    upstream.mode = "500"

    with pytest.raises(openai.InternalServerError) as caught:
        sdk(upstream).chat.completions.create(model="m", messages=MESSAGES)

    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"


def test_a_400_is_the_clients_fault(upstream: FakeUpstream) -> None:
    upstream.mode = "400"

    with pytest.raises(openai.BadRequestError) as caught:
        sdk(upstream).chat.completions.create(model="m", messages=MESSAGES, stream=True)

    assert caught.value.body == {
        "message": "bad request from fake",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_a_stopped_upstream_refuses_connections_and_starts_again_on_the_same_port(
    upstream: FakeUpstream,
) -> None:
    port = upstream.port
    upstream.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    with pytest.raises(openai.APIConnectionError):
        sdk(upstream).chat.completions.create(model="m", messages=MESSAGES)

    upstream.start()
    assert upstream.port == port
    answer = sdk(upstream).chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].message.content


def test_stop_resets_connections_that_are_still_open(upstream: FakeUpstream) -> None:
    upstream.mode = "hang"
    with post(upstream, {"model": "m"}) as sock:
        time.sleep(0.1)
        upstream.stop()
        received, ending = read_until_closed(sock)

    assert (received, ending) == (b"", "reset")
    assert upstream.disconnects == []  # the server left, not the client


def test_a_cut_stream_raises_in_the_sdk_after_two_chunks(
    upstream: FakeUpstream,
) -> None:
    upstream.mode = "cut"
    seen: list[str | None] = []

    stream = sdk(upstream).chat.completions.create(
        model="m", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content)

    assert seen == ["Hello from", " alpha. Hello"]


def test_a_cut_stream_is_a_reset_without_done(upstream: FakeUpstream) -> None:
    upstream.mode = "cut"
    with post(upstream, {"model": "m", "stream": True}) as sock:
        received, ending = read_until_closed(sock)

    assert ending == "reset"
    assert received.count(b"data: {") == 2
    assert b"[DONE]" not in received


def test_a_cut_plain_answer_resets_before_any_byte(upstream: FakeUpstream) -> None:
    upstream.mode = "cut"
    with post(upstream, {"model": "m"}) as sock:
        assert read_until_closed(sock) == (b"", "reset")


def test_a_garbage_stream_sends_a_malformed_event_after_two_chunks(
    upstream: FakeUpstream,
) -> None:
    upstream.mode = "garbage"
    with post(upstream, {"model": "m", "stream": True}) as sock:
        received, ending = read_until_closed(sock)

    events = received.partition(b"\r\n\r\n")[2]
    assert ending == "eof"
    assert events.count(b"data: {") == 3
    assert b"data: {not json\n\n" in events
    assert b"[DONE]" not in events


def test_a_client_timing_out_on_a_hanging_upstream_is_recorded_as_a_disconnect(
    upstream: FakeUpstream,
) -> None:
    upstream.mode = "hang"

    with pytest.raises(openai.APITimeoutError):
        sdk(upstream, timeout=0.3).chat.completions.create(model="m", messages=MESSAGES)
    gave_up = time.monotonic()

    deadline = gave_up + 1
    while not upstream.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(upstream.disconnects) == 1
    assert abs(upstream.disconnects[0] - gave_up) < 0.2


def test_a_client_leaving_a_slow_stream_is_recorded_as_a_disconnect(
    upstream: FakeUpstream,
) -> None:
    upstream.chunk_delay_s = 0.2
    sock = post(upstream, {"model": "m", "stream": True})
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    left = time.monotonic()
    sock.close()

    deadline = left + 1
    while not upstream.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(upstream.disconnects) == 1
    assert (
        upstream.disconnects[0] - left < 0.1
    )  # noticed at once, not at the next chunk


def test_a_finished_answer_on_a_closed_keep_alive_connection_is_no_disconnect(
    upstream: FakeUpstream,
) -> None:
    client = sdk(upstream)
    client.chat.completions.create(model="m", messages=MESSAGES)
    client.chat.completions.create(model="m", messages=MESSAGES)
    client.close()
    time.sleep(0.05)

    assert len(upstream.hits) == 2
    assert upstream.disconnects == []


def test_hits_record_the_path_body_and_headers_of_each_chat_request(
    upstream: FakeUpstream,
) -> None:
    before = time.monotonic()
    sdk(upstream).chat.completions.create(
        model="m-1", messages=MESSAGES, temperature=0.5
    )
    upstream.chunks = 2
    with post(upstream, {"model": "raw"}) as sock:
        sock.recv(65536)
    raw = json.dumps({"model": "second"}).encode()
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=3) as sock:
        sock.sendall(
            b"POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(raw), raw)
        )
        sock.recv(65536)

    first, second, third = upstream.hits
    assert first.path == "/v1/chat/completions"
    assert first.body == {"model": "m-1", "messages": MESSAGES, "temperature": 0.5}
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.headers["content-type"] == "application/json"
    assert before <= first.at <= second.at <= third.at
    assert second.body == {"model": "raw"}
    assert third.path == "/chat/completions"
    assert third.body == {"model": "second"}


def test_a_chunked_request_body_is_read_whole(upstream: FakeUpstream) -> None:
    raw = json.dumps({"model": "chunked", "messages": MESSAGES}).encode()
    half = len(raw) // 2
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=3) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n"
            % (half, raw[:half], len(raw) - half, raw[half:])
        )
        answer = sock.recv(65536)

    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert upstream.hits[0].body == {"model": "chunked", "messages": MESSAGES}


def test_one_connection_serves_several_requests(upstream: FakeUpstream) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=3) as sock:
        for _ in range(3):
            sock.sendall(request)
            answer = b""
            while not answer.endswith(b'{"status": "ok"}'):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 OK")


def test_models_are_listed_and_other_paths_are_not_found(
    upstream: FakeUpstream,
) -> None:
    client = sdk(upstream)

    assert [m.id for m in client.models.list()] == ["m-1", "m-2"]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="m-1", input="x")


def test_the_command_line_prints_its_url_serves_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "routing.dev.fake_upstream", "--port", "0"]
        + ["--mode", "no_usage", "--models", "a,b", "--name", "bench"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        ready, url = process.stdout.readline().split()
        assert ready == "READY"
        client = openai.OpenAI(api_key="x", base_url=f"{url}/v1", max_retries=0)
        assert [m.id for m in client.models.list()] == ["a", "b"]
        answer = client.chat.completions.create(model="a", messages=MESSAGES)
        assert (
            answer.choices[0].message.content == "Hello from bench. Hello from bench."
        )
        assert answer.usage is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()
