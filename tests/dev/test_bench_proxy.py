"""The proxy benchmark's harness: its options, the served command, its client,
its verdicts, and a quick direct-only run against the fake upstream.

LiteLLM is not needed: its side is the one thing these tests leave out.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from routing.dev.bench_proxy import (
    Cell,
    Connection,
    Options,
    Recording,
    Result,
    parse_args,
    usable_sides,
    verdicts,
    web_command,
)

ROOT = Path(__file__).resolve().parents[2]


def test_quick_shrinks_the_counts_that_were_not_given() -> None:
    options = parse_args(["--quick", "--requests", "7"])

    assert (options.rounds, options.requests, options.warmup) == (2, 7, 8)
    assert options.concurrency == (1, 8, 32)
    assert options.sides == ("direct", "nexus", "litellm")
    assert options.streams == (False, True)


def test_sides_are_measured_in_the_canonical_order_whatever_the_order_given() -> None:
    options = parse_args(["--sides", "litellm,direct", "--concurrency", "4,2"])

    assert options.sides == ("direct", "litellm")
    assert options.concurrency == (4, 2)


@pytest.mark.parametrize(
    "argv",
    [
        ["--sides", "direct,envoy"],
        ["--sides", ""],
        ["--concurrency", "0"],
        ["--concurrency", "1,x"],
        ["--rounds", "0"],
        ["--requests", "0"],
    ],
)
def test_the_parser_refuses_what_cannot_run(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_the_web_command_is_the_procfiles_web_line_on_the_given_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "worker: exec celery -A x worker\n"
        "web: exec gunicorn app:application --bind 127.0.0.1:${NEXUS_PORT:-8000} "
        "--workers ${WEB_WORKERS:-3} -k uvicorn.workers.UvicornWorker\n"
    )
    monkeypatch.delenv("WEB_WORKERS", raising=False)

    argv = web_command(4321, procfile)

    assert argv == [
        sys.executable,
        "-m",
        "gunicorn",
        "app:application",
        "--bind",
        "127.0.0.1:4321",
        "--workers",
        "3",
        "-k",
        "uvicorn.workers.UvicornWorker",
    ]


def test_the_real_procfile_gives_a_command_bound_to_the_port() -> None:
    argv = web_command(4321)

    assert argv[:2] == [sys.executable, "-m"]
    assert any("127.0.0.1:4321" in arg for arg in argv), argv
    assert not any("NEXUS_PORT" in arg for arg in argv), argv


def test_without_litellm_its_side_is_dropped_with_a_line_saying_how_to_add_it(
    tmp_path: Path,
) -> None:
    site = tmp_path / "no-such-site"

    sides, notes = usable_sides(Options(litellm_site=str(site)))

    assert sides == ["direct", "nexus"]
    (note,) = notes
    assert note.startswith("LiteLLM side skipped: litellm[proxy] ")
    assert str(site) in note
    assert "pip install --target" in note


def test_the_client_reopens_a_kept_alive_connection_the_server_closed() -> None:
    """As gunicorn does after its keep-alive timeout: answer, then hang up."""
    body = b'{"ok": true}'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    accepted: list[int] = []

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        accepted.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def scenario() -> list[bytes]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = Connection("127.0.0.1", port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        tails = []
        try:
            for _ in range(3):
                reply = await connection.call(request)
                assert reply.status == 200
                tails.append(reply.tail)
                await asyncio.sleep(0.05)  # let the server's close arrive
        finally:
            await connection.close()
            server.close()
        return tails

    tails = asyncio.run(scenario())

    assert tails == [body, body, body]
    assert len(accepted) == 3


def _cell(side: str, stream: bool, c: int, ms: list[float], seconds: float) -> Cell:
    return Cell(side, stream, c, latencies_ms=list(ms), seconds=seconds)


def test_the_verdict_names_each_concurrency_where_nexus_falls_behind() -> None:
    options = Options(concurrency=(1, 8), streams=(False,), sides=("nexus", "litellm"))
    cells = [
        _cell("nexus", False, 1, [1.0] * 99 + [2.0], 1.0),
        _cell("litellm", False, 1, [3.0] * 99 + [9.0], 2.0),
        # at 8: Nexus's median is better but its tail is worse, and it is slower
        _cell("nexus", False, 8, [2.0] * 98 + [50.0] * 2, 2.0),
        _cell("litellm", False, 8, [4.0] * 98 + [10.0] * 2, 1.0),
    ]
    recording = Recording(calls=10, decisions=10, with_usage=9, sources={"upstream": 9})

    lines = verdicts(Result(options, cells, [], recording))

    assert lines == [
        "target Nexus added p50 <= LiteLLM's at every concurrency: MET",
        "target Nexus added p99 <= LiteLLM's at every concurrency: "
        "NOT MET at non-stream c=8",
        "target Nexus req/s >= LiteLLM's at every concurrency: "
        "NOT MET at non-stream c=8",
        "target every Nexus call recorded with usage: NOT MET",
    ]


def test_errors_on_either_side_fail_every_comparison_at_that_concurrency() -> None:
    options = Options(concurrency=(1,), streams=(True,), sides=("nexus", "litellm"))
    nexus = _cell("nexus", True, 1, [1.0] * 10, 1.0)
    nexus.errors = 1
    cells = [nexus, _cell("litellm", True, 1, [5.0] * 10, 1.0)]

    lines = verdicts(Result(options, cells, [], None))

    assert lines[:3] == [
        f"target Nexus {label} at every concurrency: NOT MET at stream c=1"
        for label in (
            "added p50 <= LiteLLM's",
            "added p99 <= LiteLLM's",
            "req/s >= LiteLLM's",
        )
    ]
    assert lines[3] == "target every Nexus call recorded with usage: not measured"


ROW = re.compile(
    r"^direct\s+(?P<calls>\d+)\s+(?P<p50>[\d.]+)\s+(?P<p99>[\d.]+)\s+"
    r"(?P<a50>[+-][\d.]+)\s+(?P<a99>[+-][\d.]+)\s+(?P<rps>\d+)\s+(?P<ttfb>[\d.]+|-)"
    r"\s+-$"
)


def test_a_quick_direct_run_measures_every_stream_mode_and_concurrency() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "routing.dev.bench_proxy",
            "--quick",
            "--sides",
            "direct",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    tables = re.findall(
        r"^-- (non-stream|stream), concurrency (\d+)\n.*\n(.*)$", run.stdout, re.M
    )
    assert [(mode, int(c)) for mode, c, _ in tables] == [
        (mode, c) for mode in ("non-stream", "stream") for c in (1, 8, 32)
    ], run.stdout
    for mode, _, row in tables:
        match = ROW.match(row)
        assert match is not None, row
        assert int(match["calls"]) == 2 * 40  # two rounds of 40, no errors
        assert 0 < float(match["p50"]) <= float(match["p99"])
        assert float(match["a50"]) == float(match["a99"]) == 0.0
        assert int(match["rps"]) > 0
        assert (match["ttfb"] == "-") == (mode == "non-stream")
        if mode == "stream":
            assert 0 < float(match["ttfb"]) <= float(match["p99"])
    assert "target every Nexus call recorded with usage: not measured" in run.stdout
    assert "LiteLLM side skipped" not in run.stdout
