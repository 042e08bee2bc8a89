"""The LiteLLM comparison: runs without litellm, and drives a Router when present.

litellm is not a dependency (CI does not install it): these tests hide any
installed copy or put a stand-in module in its place, so they run the same
everywhere.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import types
from typing import Any

import pytest

from routing.dev import bench_litellm


def _rows(out: str) -> dict[str, tuple[float, float]]:
    return {
        m["label"].strip(): (float(m["p50"]), float(m["p99"]))
        for m in re.finditer(
            r"^(?P<label>(?:Nexus|LiteLLM) .+?\))\s+(?P<p50>[\d.]+)\s+(?P<p99>[\d.]+)$",
            out,
            re.MULTILINE,
        )
    }


def test_without_litellm_the_nexus_side_runs_and_a_line_says_how_to_compare(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # import litellm -> ImportError

    bench_litellm.main(["--rounds", "2", "--calls", "20"])

    out = capsys.readouterr().out
    assert "litellm is not installed; pip install litellm to compare" in out
    rows = _rows(out)
    assert list(rows) == ["Nexus pipeline.route() (50 backends)"]
    p50, p99 = rows["Nexus pipeline.route() (50 backends)"]
    assert 0 < p50 <= p99


class _Router:
    """Stands in for ``litellm.Router``: records how it was built and called."""

    built: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    touch_network = False

    def __init__(self, **kwargs: Any) -> None:
        _Router.built.append(kwargs)

    def get_available_deployment(self, **kwargs: Any) -> dict[str, Any]:
        _Router.calls.append(kwargs)
        if _Router.touch_network:
            with socket.socket() as sock, contextlib.suppress(OSError):
                sock.connect(("127.0.0.1", 9))
        return self.built[-1]["model_list"][0]


@pytest.fixture
def fake_litellm(monkeypatch: pytest.MonkeyPatch) -> type[_Router]:
    module = types.ModuleType("litellm")
    module.Router = _Router  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "litellm", module)
    monkeypatch.setattr(bench_litellm, "litellm_version", lambda: "0.0-test")
    _Router.built, _Router.calls, _Router.touch_network = [], [], False
    return _Router


def test_with_litellm_both_sides_are_timed_in_rounds_and_the_ratio_is_printed(
    fake_litellm: type[_Router], capsys: pytest.CaptureFixture[str]
) -> None:
    bench_litellm.main(["--rounds", "3", "--calls", "10"])

    out = capsys.readouterr().out
    (built,) = fake_litellm.built
    assert built["routing_strategy"] == "simple-shuffle"
    deployments = built["model_list"]
    assert len(deployments) == 50
    assert {d["model_name"] for d in deployments} == {"llama3"}
    assert len({d["litellm_params"]["api_base"] for d in deployments}) == 50
    # warm-up plus 3 rounds of 10, each with the benchmark request's messages
    assert len(fake_litellm.calls) == 200 + 30
    assert fake_litellm.calls[-1] == {
        "model": "llama3",
        "messages": bench_litellm.pipeline_bench.REQUEST.body["messages"],
    }
    rows = _rows(out)
    assert set(rows) == {
        "Nexus pipeline.route() (50 backends)",
        "LiteLLM get_available_deployment (50)",
    }
    ratio = re.search(r"LiteLLM 0\.0-test: LiteLLM p50 / Nexus p50 = ([\d.]+)x", out)
    assert ratio is not None, out
    nexus_p50 = rows["Nexus pipeline.route() (50 backends)"][0]
    litellm_p50 = rows["LiteLLM get_available_deployment (50)"][0]
    assert float(ratio[1]) == pytest.approx(litellm_p50 / nexus_p50, abs=0.06)
    assert "not installed" not in out
    assert "tried the network" not in out


def test_a_router_that_reaches_for_the_network_is_refused_and_reported(
    fake_litellm: type[_Router], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_litellm.touch_network = True
    connect = socket.socket.connect

    result = bench_litellm.compare(rounds=1, calls=5, warmup=1)

    assert result.network_attempts == 6
    out = bench_litellm.report(result, 1, 5)
    assert "LiteLLM tried the network 6 times" in out
    assert socket.socket.connect is connect  # the guard is gone afterwards
