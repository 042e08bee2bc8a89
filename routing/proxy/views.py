"""The OpenAI-compatible endpoints under ``/v1/`` (see docs/proxy.md).

``POST /v1/chat/completions`` is an async view: it decides (``DecideView``, in a
thread, like every ORM call), then forwards with one pooled ``httpx.AsyncClient``
per event loop, failing over to the next candidate while nothing has been sent
to the client, and relays a stream chunk by chunk. No worker thread waits on
an upstream: under the ASGI server a long stream costs a coroutine.

Timeouts: connect (httpx), first byte (until the upstream's response starts),
idle (between stream chunks), total (the whole request) — asyncio deadlines
around each step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from routing.middleware import cut_request_cycles
from routing.proxy.decide import DecideView, ModelsView, Plan, Target
from routing.proxy.upstream import (
    MalformedEvent,
    SseRelay,
    Usage,
    answer_characters,
    chat_url,
    client_wants_usage,
    sent_characters,
    tokens_for,
    upstream_body,
    upstream_headers,
    usage_from,
)
from routing.services.passive_health import in_flight_end, in_flight_start, trial_take
from routing.services.proxy import (
    CLIENT_DISCONNECTED,
    CLIENT_ERROR,
    FAILED,
    FAILED_OVER,
    INTERRUPTED,
    OK,
    Attempt,
    proxy_outcome_record,
)

logger = logging.getLogger(__name__)

UPSTREAM_ERROR = "upstream_error"
DONE_EVENT = b"data: [DONE]\n\n"
#: Upstream statuses that fail over (before the first byte): 5xx, 408, 429.
RETRYABLE = frozenset({408, 429})
#: Response headers passed on from the upstream.
PASSED_HEADERS = ("content-type", "openai-processing-ms", "x-ratelimit-remaining")

_decide_view = DecideView.as_view()
_models = ModelsView.as_view()


#: The threads that run the proxy's database work (decide, record). Django's
#: ASGI handler would otherwise start a thread, and so open a connection, for
#: every request; these threads keep theirs.
_db_threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="nexus-proxy-db")


def _in_db_thread[**P, R](work: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``work`` on a proxy database thread. Afterwards the connection goes back
    to the pool (PostgreSQL) or, on SQLite, stays open for the thread's next
    work unless it failed; a stream waiting upstream holds no connection."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return work(*args, **kwargs)
        finally:
            for conn in connections.all(initialized_only=True):
                if conn.vendor != "sqlite" or (
                    conn.errors_occurred and not conn.is_usable()
                ):
                    conn.close()

    return sync_to_async(run, thread_sensitive=False, executor=_db_threads)


_decide = _in_db_thread(_decide_view)
_record = _in_db_thread(proxy_outcome_record)
_clients: dict[int, httpx.AsyncClient] = {}
#: Clean-ups and recordings running after their request (kept until they end).
_cleanups: set[asyncio.Future[Any]] = set()


def _client() -> httpx.AsyncClient:
    """This event loop's pooled client (one per loop: httpx pools are loop-bound)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(id(loop))
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                None, connect=settings.NEXUS_PROXY_CONNECT_TIMEOUT_S, pool=None
            ),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=200),
            follow_redirects=False,
        )
        _clients[id(loop)] = client
    return client


def _ms(since: float) -> float:
    return (time.monotonic() - since) * 1000


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 < value < 86400 else None


def _error_response(
    status: int, message: str, plan: Plan, **extra: Any
) -> HttpResponse:
    body = {
        "error": {"type": UPSTREAM_ERROR, "message": message, "fields": {}, **extra}
    }
    response = HttpResponse(
        orjson.dumps(body), status=status, content_type="application/json"
    )
    _stamp(response, plan)
    return response


def _stamp(response: HttpResponse, plan: Plan) -> None:
    response["X-Request-ID"] = plan.request_id
    response["X-Nexus-Decision-Id"] = str(plan.decision_id)


class _Outcome:
    """What happened to one proxied request (filled in as it goes)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.attempts: list[Attempt] = []
        self.served: str | None = None
        self.usage: Usage | None = None
        self.started = time.monotonic()
        self.recorded = False
        #: How a relayed stream is finished (set once one starts).
        self.finish: Callable[[], Coroutine[Any, Any, None]] | None = None

    def ensure_finished(self, task: asyncio.Task[Any]) -> None:
        """The request's task is done: finish what nothing else finished.

        Django's ASGI handler may be cancelled (the client left) after the
        view returned a stream but before it asked for its first chunk; then
        no code of the stream ever runs, and this is what closes the upstream,
        counts the attempt out and records the request.
        """
        if self.recorded:
            return
        for attempt in self.attempts:
            if attempt.outcome == FAILED:
                attempt.outcome = CLIENT_DISCONNECTED
                attempt.error = "the client disconnected"
        _in_background(
            self.finish() if self.finish is not None else self._release_all()
        )

    async def _release_all(self) -> None:
        for attempt in self.attempts:
            await _release(attempt)
        await self.record()

    async def record(self) -> None:
        """Record the request now (once)."""
        if self.recorded:
            return
        self.recorded = True
        await self._write()

    def record_soon(self) -> None:
        """Record the request (once) right after its answer has gone out: a
        whole answer whose one attempt succeeded does not wait on the database
        (``drain`` waits for it at shutdown)."""
        if self.recorded:
            return
        self.recorded = True
        _in_background(self._write())

    async def _write(self) -> None:
        try:
            await _record(
                decision_id=self.plan.decision_id,
                attempts=self.attempts,
                served=self.served,
                usage=self.usage,
                latency_ms=_ms(self.started),
            )
        except Exception:
            logger.exception(
                "recording the proxied request %s failed", self.plan.decision_id
            )


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` on the event loop, kept until it ends (see ``drain``)."""
    task = asyncio.get_running_loop().create_task(work)
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)


async def drain(timeout: float) -> None:
    """Wait up to ``timeout`` seconds for the clean-ups and recordings still
    running (the ASGI application's shutdown)."""
    if _cleanups:
        await asyncio.wait(set(_cleanups), timeout=timeout)


def _method_not_allowed(request: HttpRequest, allowed: str) -> HttpResponse:
    """405 in the API's error shape (Django's own 405 has an empty body)."""
    body = {
        "error": {
            "type": "method_not_allowed",
            "message": f"{request.method} is not allowed here; use {allowed}.",
            "fields": {},
        }
    }
    response = HttpResponse(
        orjson.dumps(body), status=405, content_type="application/json"
    )
    response["Allow"] = allowed
    return response


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse:
    """Decide, forward, fail over, stream, record."""
    if request.method != "POST":
        return _method_not_allowed(request, "POST")
    decided = await _decide(request)
    plan: Plan | None = getattr(decided, "plan", None)
    if plan is None:
        return decided  # rendered by Django (which needs DRF's contexts)
    cut_request_cycles(request, decided)  # its response is not rendered
    outcome = _Outcome(plan)
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(outcome.ensure_finished)
    deadline = asyncio.get_running_loop().time() + settings.NEXUS_PROXY_TOTAL_TIMEOUT_S
    try:
        return await _forward(plan, outcome, deadline)
    except asyncio.CancelledError:
        # The client went away while an upstream was still thinking.
        if outcome.attempts and outcome.attempts[-1].outcome == FAILED:
            outcome.attempts[-1].outcome = CLIENT_DISCONNECTED
        await asyncio.shield(outcome.record())
        raise


async def _forward(plan: Plan, outcome: _Outcome, deadline: float) -> HttpResponse:
    """Try the targets in order until one starts an answer."""
    max_attempts = settings.NEXUS_PROXY_MAX_ATTEMPTS
    for target in plan.targets:
        if len(outcome.attempts) >= max_attempts:
            break
        if target.half_open and not await sync_to_async(
            trial_take, thread_sensitive=False
        )(target.backend):
            continue  # another request is the half-open circuit's trial
        attempt = Attempt(backend=target.backend)
        outcome.attempts.append(attempt)
        response = await _start(target, plan, attempt, deadline)
        if response is None:
            attempt.outcome = FAILED_OVER
            continue
        outcome.served = target.backend
        if response.status_code >= 400:
            return await _client_error(response, plan, attempt, outcome)
        if plan.stream:
            return _stream(response, plan, attempt, outcome, deadline)
        return await _complete(response, plan, attempt, outcome, deadline)
    if outcome.attempts:
        outcome.attempts[-1].outcome = FAILED
    outcome.served = None
    await outcome.record()
    tried = (
        "; ".join(f"{a.backend}: {a.error or a.status}" for a in outcome.attempts)
        or "no upstream could be tried (a half-open circuit's trial is running)"
    )
    return _error_response(
        502,
        f"Every upstream failed before answering ({tried}).",
        plan,
        attempts=[a.to_dict() for a in outcome.attempts],
    )


async def _start(
    target: Target, plan: Plan, attempt: Attempt, deadline: float
) -> httpx.Response | None:
    """Send to one upstream and wait for its response to start; None = failed
    over (connection refused or reset, first-byte timeout, 5xx, 408, 429)."""
    client = _client()
    body = upstream_body(plan.body, model=plan.model)
    request = client.build_request(
        "POST",
        chat_url(target.base_url),
        content=orjson.dumps(body),
        headers=upstream_headers(target.api_key_env, plan.request_id),
    )
    loop = asyncio.get_running_loop()
    first_byte = min(
        settings.NEXUS_PROXY_FIRST_BYTE_TIMEOUT_S, max(0.0, deadline - loop.time())
    )
    started = time.monotonic()
    # Marked first, and shielded: the count runs even if this request is
    # cancelled meanwhile, and then its end must follow.
    attempt.in_flight = uuid.uuid4().hex
    await _shielded(in_flight_start, target.backend, attempt.in_flight)
    try:
        async with asyncio.timeout(first_byte):
            response = await client.send(request, stream=True)
    except TimeoutError:
        attempt.error = f"no answer within {first_byte:g} s (first-byte timeout)"
    except httpx.HTTPError as exc:
        attempt.error = (
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        )
    except BaseException:
        attempt.duration_ms = _ms(started)
        await _release(attempt)
        raise
    else:
        attempt.status = response.status_code
        attempt.ttft_ms = _ms(started)
        if response.status_code >= 500 or response.status_code in RETRYABLE:
            attempt.error = f"HTTP {response.status_code}"
            if response.status_code == 429:
                attempt.retry_after_s = _retry_after(response)
            await _close(response)
        else:
            attempt.duration_ms = _ms(started)
            return response
    attempt.duration_ms = _ms(started)
    await _release(attempt)
    return None


async def _close(upstream: httpx.Response) -> None:
    """Close an upstream response and unbind its stream, which refers back to
    it: a reference cycle that only the garbage collector would free, and with
    it the connection pool's request objects (see nexus_site/asgi.py)."""
    await upstream.aclose()
    upstream.stream = _NO_STREAM


_NO_STREAM = httpx.ByteStream(b"")


async def _release(attempt: Attempt) -> None:
    if attempt.in_flight:
        token, attempt.in_flight = attempt.in_flight, ""
        with contextlib.suppress(Exception):
            await _shielded(in_flight_end, attempt.backend, token)


async def _shielded(
    count: Callable[[str, str], None], backend: str, token: str
) -> None:
    """Start or end an attempt's in-flight count; a cancellation of the request
    cannot stop it (a cancelled executor job that never ran would leave the
    count off until the lease expires)."""
    change = asyncio.ensure_future(
        sync_to_async(count, thread_sensitive=False)(backend, token)
    )
    _cleanups.add(change)
    change.add_done_callback(_cleanups.discard)
    await asyncio.shield(change)


def _passed_headers(upstream: httpx.Response, response: HttpResponse) -> None:
    for name in PASSED_HEADERS:
        if name in upstream.headers and name != "content-type":
            response[name] = upstream.headers[name]


async def _client_error(
    upstream: httpx.Response, plan: Plan, attempt: Attempt, outcome: _Outcome
) -> HttpResponse:
    """A 4xx other than 408/429: the client's problem, passed on as it is."""
    try:
        content = await upstream.aread()
    finally:
        await _close(upstream)
        await _release(attempt)
    attempt.outcome = CLIENT_ERROR
    attempt.error = f"HTTP {upstream.status_code}"
    outcome.usage = None
    await outcome.record()
    response = HttpResponse(
        content,
        status=upstream.status_code,
        content_type=upstream.headers.get("content-type", "application/json"),
    )
    _passed_headers(upstream, response)
    _stamp(response, plan)
    return response


async def _complete(
    upstream: httpx.Response,
    plan: Plan,
    attempt: Attempt,
    outcome: _Outcome,
    deadline: float,
) -> HttpResponse:
    """A whole (non-stream) answer: read it, learn its usage, pass it on."""
    started = time.monotonic() - (attempt.ttft_ms or 0) / 1000
    try:
        async with asyncio.timeout_at(deadline):
            content = await upstream.aread()
    except (TimeoutError, httpx.HTTPError) as exc:
        attempt.outcome = INTERRUPTED
        attempt.error = f"answer cut: {type(exc).__name__}"
        attempt.duration_ms = _ms(started)
        await _close(upstream)
        await _release(attempt)
        outcome.usage = _estimate(plan, 0)
        await outcome.record()
        return _error_response(502, "The upstream's answer broke off.", plan)
    finally:
        await _close(upstream)
    await _release(attempt)
    attempt.duration_ms = _ms(started)
    attempt.outcome = OK
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        parsed = None
    found = usage_from(parsed)
    outcome.usage = (
        Usage(found[0], found[1], "upstream")
        if found
        else _estimate(plan, answer_characters(parsed))
    )
    if len(outcome.attempts) == 1:
        outcome.record_soon()  # nothing failed: the answer need not wait
    else:
        await outcome.record()  # failures change health: before answering
    response = HttpResponse(
        content,
        status=upstream.status_code,
        content_type=upstream.headers.get("content-type", "application/json"),
    )
    _passed_headers(upstream, response)
    _stamp(response, plan)
    return response


def _estimate(plan: Plan, answer_chars: int) -> Usage:
    return Usage(
        tokens_for(sent_characters(plan.body)), tokens_for(answer_chars), "estimated"
    )


def _stream(
    upstream: httpx.Response,
    plan: Plan,
    attempt: Attempt,
    outcome: _Outcome,
    deadline: float,
) -> StreamingHttpResponse:
    """Relay the upstream's events as they come (see ``_relay``)."""
    relay = SseRelay(keep_usage_chunk=client_wants_usage(plan.body))
    started = time.monotonic() - (attempt.ttft_ms or 0) / 1000

    def finish() -> Coroutine[Any, Any, None]:
        return _finish_stream(upstream, relay, plan, attempt, outcome, started)

    outcome.finish = finish
    response = StreamingHttpResponse(
        _relay(upstream, relay, plan, attempt, outcome, deadline, started),
        status=upstream.status_code,
        content_type=upstream.headers.get("content-type", "text/event-stream"),
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    _stamp(response, plan)
    return response


def _error_event(message: str) -> bytes:
    event = {"error": {"type": UPSTREAM_ERROR, "message": message}}
    return b"data: " + orjson.dumps(event) + b"\n\n"


async def _relay(
    upstream: httpx.Response,
    relay: SseRelay,
    plan: Plan,
    attempt: Attempt,
    outcome: _Outcome,
    deadline: float,
    started: float,
) -> AsyncIterator[bytes]:
    """Pass each whole SSE event on as it arrives. A break after the first
    byte ends the stream with one error event and no ``[DONE]``; the client
    leaving closes the upstream at once."""
    idle = settings.NEXUS_PROXY_IDLE_TIMEOUT_S
    loop = asyncio.get_running_loop()
    chunks = upstream.aiter_raw()
    try:
        while True:
            wait = min(idle, deadline - loop.time())
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    data = await anext(chunks)
            except StopAsyncIteration:
                break
            out = relay.feed(data)
            if out:
                yield out
            if relay.done:
                break
        if relay.done:
            attempt.outcome = OK
            # Recorded before [DONE]: a client that has the whole answer can
            # already read its usage.
            await _finish_stream(upstream, relay, plan, attempt, outcome, started)
            yield DONE_EVENT
        else:
            attempt.outcome = INTERRUPTED
            attempt.error = "the stream ended without [DONE]"
            yield _error_event("The upstream's stream ended before it was complete.")
    except MalformedEvent as exc:
        if relay.pending:
            yield relay.pending
        attempt.outcome = INTERRUPTED
        attempt.error = f"malformed event: {exc}"
        yield _error_event("The upstream sent a malformed event; the answer is cut.")
    except TimeoutError:
        attempt.outcome = INTERRUPTED
        total = deadline - loop.time() <= 0
        attempt.error = "total timeout" if total else f"idle for {idle:g} s"
        yield _error_event(
            "The upstream stopped sending "
            + ("before the total timeout." if total else f"for {idle:g} s.")
        )
    except httpx.HTTPError as exc:
        attempt.outcome = INTERRUPTED
        attempt.error = (
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        )
        yield _error_event("The upstream's stream broke off; the answer is cut.")
    except (asyncio.CancelledError, GeneratorExit):
        attempt.outcome = CLIENT_DISCONNECTED
        attempt.error = "the client disconnected"
        raise
    finally:
        await _finish_stream(upstream, relay, plan, attempt, outcome, started)


async def _finish_stream(
    upstream: httpx.Response,
    relay: SseRelay,
    plan: Plan,
    attempt: Attempt,
    outcome: _Outcome,
    started: float,
) -> None:
    """Close the upstream, count it out, record the request (once)."""
    if outcome.recorded:
        return
    await _close(upstream)
    attempt.duration_ms = _ms(started)
    await _release(attempt)
    found = relay.usage
    outcome.usage = (
        Usage(found[0], found[1], "upstream")
        if found and attempt.outcome == OK
        else _estimate(plan, relay.characters)
    )
    await asyncio.shield(outcome.record())
    outcome.finish = None  # it refers to ``outcome``: a reference cycle


@csrf_exempt
async def models_list(request: HttpRequest) -> HttpResponse:
    """Every model served by an enabled backend, and every alias."""
    if request.method not in {"GET", "HEAD"}:
        return _method_not_allowed(request, "GET")
    response: HttpResponse = await sync_to_async(_models)(request)
    return response
