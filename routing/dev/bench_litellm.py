"""Nexus beside LiteLLM: ``python -m routing.dev.bench_litellm [--rounds N]``.

Times one routing decision at 50 backends on each side, same machine, same
run, in alternating rounds so background load falls on both alike:

- Nexus: ``pipeline.route()`` of the benchmark's request (restricted privacy,
  minimum tier, budget at its soft limit, mixed capabilities, trace on) on the
  benchmark's 50-backend fleet;
- LiteLLM: ``Router.get_available_deployment()`` with
  ``routing_strategy="simple-shuffle"`` over 50 deployments of one
  ``model_name`` (fake ``api_base``/``api_key``: nothing is contacted; the
  cost map is read from the package, ``LITELLM_LOCAL_MODEL_COST_MAP=True``,
  and every socket connect raises while LiteLLM is timed).

LiteLLM is optional and not a Nexus dependency: ``pip install litellm`` into
the same virtualenv, then run the module. Without it the Nexus side still runs
and a line says how to add the comparison.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# The one place the fleet and request builders are imported from (the bench
# module moves to routing.dev.bench; change this line then).
from routing.dev import bench as pipeline_bench
from routing.pipeline.base import default_pipeline
from routing.pipeline.intent import RoutingContext
from routing.pipeline_build import describe

DEPLOYMENTS = 50
MODEL_NAME = "llama3"
NOT_INSTALLED = "litellm is not installed; pip install litellm to compare"
TARGET_RATIO = 3.0


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Samples:
    """Microseconds per call of one side."""

    label: str
    values: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return _pct(self.values, 0.5)

    @property
    def p99(self) -> float:
        return _pct(self.values, 0.99)


def _time_calls(call: Callable[[], object], count: int) -> list[float]:
    perf = time.perf_counter_ns
    values = []
    for _ in range(count):
        start = perf()
        call()
        values.append((perf() - start) / 1000.0)
    return values


# -- Nexus ----------------------------------------------------------------------------


def nexus_call(size: int = DEPLOYMENTS) -> Callable[[], object]:
    """One ``pipeline.route()`` of the benchmark's request at ``size`` backends."""
    pipeline = default_pipeline()
    context = RoutingContext(pipeline_bench.build_fleet(size), (pipeline_bench.BUDGET,))
    request = pipeline_bench.REQUEST
    return lambda: pipeline.route(request, context)


# -- LiteLLM --------------------------------------------------------------------------


def litellm_module() -> Any | None:
    """``litellm`` imported with its bundled cost map (no download), or None."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return litellm


def litellm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("litellm")
    except PackageNotFoundError:
        return "unknown"


def model_list(size: int = DEPLOYMENTS) -> list[dict[str, Any]]:
    """``size`` deployments of one model name at fake loopback-free addresses."""
    return [
        {
            "model_name": MODEL_NAME,
            "litellm_params": {
                "model": f"openai/{MODEL_NAME}",
                "api_base": f"http://10.0.{i // 250}.{i % 250}:8000/v1",
                "api_key": "sk-bench-not-a-key",
            },
            "model_info": {"id": f"deployment-{i:04d}"},
        }
        for i in range(size)
    ]


@contextmanager
def no_network() -> Iterator[list[object]]:
    """Every socket connect raises (and is listed) while inside."""
    attempts: list[object] = []
    original = socket.socket.connect

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"bench_litellm: no network allowed (tried {address!r})")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def litellm_call(litellm: Any, size: int = DEPLOYMENTS) -> Callable[[], object]:
    """One ``Router.get_available_deployment()`` (simple-shuffle, ``size``
    deployments) with the benchmark request's messages."""
    router = litellm.Router(
        model_list=model_list(size), routing_strategy="simple-shuffle"
    )
    messages = pipeline_bench.REQUEST.body["messages"]
    return lambda: router.get_available_deployment(model=MODEL_NAME, messages=messages)


# -- the comparison -------------------------------------------------------------------


@dataclass
class Comparison:
    nexus: Samples
    litellm: Samples | None
    version: str | None
    network_attempts: int = 0

    @property
    def ratio(self) -> float | None:
        """LiteLLM p50 / Nexus p50 (how many times faster Nexus is)."""
        if self.litellm is None or not self.litellm.values:
            return None
        return self.litellm.p50 / self.nexus.p50


def compare(
    rounds: int = 5, calls: int = 2000, size: int = DEPLOYMENTS, warmup: int = 200
) -> Comparison:
    """``rounds`` alternating rounds of ``calls`` per side (LiteLLM if installed)."""
    nexus = Samples(f"Nexus pipeline.route() ({size} backends)")
    route = nexus_call(size)
    litellm = litellm_module()
    if litellm is None:
        _time_calls(route, warmup)
        for _ in range(rounds):
            nexus.values.extend(_time_calls(route, calls))
        return Comparison(nexus, None, None)
    other = Samples(f"LiteLLM get_available_deployment ({size})")
    with no_network() as attempts:
        deploy = litellm_call(litellm, size)
        _time_calls(route, warmup)
        _time_calls(deploy, warmup)
        for _ in range(rounds):
            nexus.values.extend(_time_calls(route, calls))
            other.values.extend(_time_calls(deploy, calls))
    return Comparison(nexus, other, litellm_version(), len(attempts))


def report(result: Comparison, rounds: int, calls: int) -> str:
    lines = [
        "Nexus routing decision vs LiteLLM Router, microseconds per call, "
        f"{rounds} alternating rounds x {calls} calls; pipeline {describe()}",
        f"{'side':<46}{'p50':>9}{'p99':>9}",
    ]
    sides = [result.nexus] + ([result.litellm] if result.litellm else [])
    for side in sides:
        lines.append(f"{side.label:<46}{side.p50:>9.1f}{side.p99:>9.1f}")
    if result.litellm is None:
        lines.append(NOT_INSTALLED)
        return "\n".join(lines)
    ratio = result.ratio or 0.0
    verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
    lines.append(
        f"LiteLLM {result.version}: LiteLLM p50 / Nexus p50 = {ratio:.1f}x "
        f"(target >= {TARGET_RATIO:.0f}x: {verdict})"
    )
    if result.network_attempts:
        lines.append(f"LiteLLM tried the network {result.network_attempts} times")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m routing.dev.bench_litellm")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")
    result = compare(rounds=args.rounds, calls=args.calls)
    print(report(result, args.rounds, args.calls))


if __name__ == "__main__":
    main()
