"""The compiled pipeline: used only when current, and it decides what the sources do.

scripts/test compiles the pipeline before the suite runs on it
(``NEXUS_PIPELINE=compiled``); these tests check the loader's choice on
builds of their own and compare the two pipelines on the golden routes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from routing.pipeline_build import (
    BUILD_DIR,
    INFO_FILE,
    ROOT,
    activate,
    build_state,
    source_digest,
)


def _build_dir(tmp_path: Path, digest: str | None) -> Path:
    build = tmp_path / "pipeline"
    (build / "routing").mkdir(parents=True)
    if digest is not None:
        (build / INFO_FILE).write_text(json.dumps({"digest": digest}))
    return build


def test_a_build_from_other_sources_is_stale_and_never_shadows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = _build_dir(tmp_path, "0" * 64)
    assert build_state(build) == "stale"
    path: list[str] = ["routing"]
    monkeypatch.setenv("NEXUS_PIPELINE", "auto")
    with pytest.warns(RuntimeWarning, match="changed since it was compiled"):
        assert activate(path, build) is False
    assert path == ["routing"]
    monkeypatch.setenv("NEXUS_PIPELINE", "compiled")
    with pytest.raises(ImportError, match="routing.dev.compile_pipeline"):
        activate(path, build)
    assert path == ["routing"]


def test_without_a_build_auto_runs_the_sources_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = _build_dir(tmp_path, None)
    assert build_state(build) == "missing"
    monkeypatch.setenv("NEXUS_PIPELINE", "auto")
    path: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert activate(path, build) is False
    assert path == []


def test_a_current_build_goes_in_front_of_the_sources_unless_python_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = _build_dir(tmp_path, source_digest())
    assert build_state(build) == "current"
    monkeypatch.setenv("NEXUS_PIPELINE", "python")
    path = ["routing"]
    assert activate(path, build) is False and path == ["routing"]
    monkeypatch.setenv("NEXUS_PIPELINE", "auto")
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert activate(path, build) is True
    assert path == [str(build / "routing"), "routing"]


def test_an_unknown_mode_is_refused_with_the_valid_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_PIPELINE", "fast")
    with pytest.raises(ImportError, match="auto, compiled, python"):
        activate([], _build_dir(tmp_path, None))


def _golden(tmp_path: Path, mode: str, routes: int) -> list[str]:
    out = tmp_path / f"golden-{mode}.jsonl"
    check = (
        "import sys, runpy; from routing.pipeline_build import is_compiled; "
        f"assert is_compiled() is {mode == 'compiled'}; "
        "sys.argv = ['golden', '--out', sys.argv[1], '--routes', sys.argv[2]]; "
        "runpy.run_module('routing.dev.golden', run_name='__main__')"
    )
    subprocess.run(
        [sys.executable, "-c", check, str(out), str(routes)],
        cwd=ROOT,
        env={**os.environ, "NEXUS_PIPELINE": mode},
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out.read_text().splitlines()


def test_the_compiled_pipeline_decides_every_golden_route_like_the_sources(
    tmp_path: Path,
) -> None:
    assert build_state(BUILD_DIR) == "current", (
        "No current compiled pipeline: run 'python -m routing.dev.compile_pipeline' "
        "(scripts/test does)."
    )
    compiled = _golden(tmp_path, "compiled", 4000)
    pure = _golden(tmp_path, "python", 4000)
    assert len(compiled) == len(pure) == 4000
    different = [
        i for i, (a, b) in enumerate(zip(compiled, pure, strict=True)) if a != b
    ]
    assert different == []


#: Routes the benchmark's request (50 backends, restricted, tier 3, budget at
#: its soft limit) and prints every Python-level function it ran, by name.
_COUNT_INTERPRETED = """
import collections, json, sys
from routing.dev.bench import BUDGET, REQUEST, build_fleet
from routing.pipeline import RoutingContext, RoutingRequest, default_pipeline
from routing.pipeline.rules import PrivacyConstraint
from routing.pipeline.types import PrivacyLevel
from routing.pipeline_build import is_compiled
assert is_compiled()
pipeline = default_pipeline()
context = RoutingContext(build_fleet(50), (BUDGET,))
for _ in range(20):  # per-snapshot answers are computed on first use
    pipeline.route(REQUEST, context)
# As in a server: each request is built anew from its parsed JSON (and its
# constraint too, as a zone constraint always is).
requests = [
    RoutingRequest(
        model=REQUEST.model,
        body=json.loads(json.dumps(REQUEST.body)),
        privacy=PrivacyConstraint(PrivacyLevel.RESTRICTED),
        min_tier=3,
        sources={"privacy": "header", "min_tier": "body"},
    )
    for _ in range(10)
]
calls = collections.Counter()
def count(frame, event, arg):
    if event == "call":
        code = frame.f_code
        owner = type(frame.f_locals["self"]).__name__ + "." if "self" in frame.f_locals else ""
        calls[f"{code.co_filename}:{owner}{code.co_name}"] += 1
sys.setprofile(count)
for request in requests:
    pipeline.route(request, context)
sys.setprofile(None)
print(json.dumps(calls))
"""


def test_the_compiled_benchmark_route_runs_no_python_code_in_its_stages() -> None:
    """Each Python-level call (a dataclass's generated ``__init__`` or
    ``__hash__``, ``Enum.value``) costs a compiled route about a microsecond,
    more with cold caches: only the result's constructor, after the stages, may
    run one."""
    assert build_state(BUILD_DIR) == "current"
    out = subprocess.run(
        [sys.executable, "-c", _COUNT_INTERPRETED],
        cwd=ROOT,
        env={**os.environ, "NEXUS_PIPELINE": "compiled"},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    calls = json.loads(out.stdout)
    assert calls == {"<string>:RoutingResult.__init__": 10}
