"""The compiled pipeline: ``routing/pipeline`` built with mypyc, and its loader.

``routing/pipeline`` is plain, strictly typed Python; mypyc (from the mypy
project) compiles those same files to C extension modules that route about
twice as fast (``python -m routing.dev.bench`` prints which one it measured).
The build lives outside the source tree, in ``.build/pipeline/``, beside a
``BUILD_INFO.json`` naming the digest of the sources it was compiled from.

``activate`` (called by ``routing/__init__.py``) puts the build in front of
the sources when ``NEXUS_PIPELINE`` allows it:

- ``auto`` (default): the build when it matches the sources and this Python,
  else the sources (with a warning when a build exists but is stale, so an
  edited reconciler is never shadowed by an old compiled one);
- ``compiled``: the build, or ``ImportError`` saying how to make it;
- ``python``: always the sources.

``python -m routing.dev.compile_pipeline [--if-stale]`` compiles (``scripts/run`` and
``scripts/test`` do it when the sources change). This module imports only the
standard library until it builds; mypyc is needed only to build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "routing" / "pipeline"
BUILD_DIR = ROOT / ".build" / "pipeline"
INFO_FILE = "BUILD_INFO.json"
MODES = ("auto", "compiled", "python")
#: Modules left interpreted: they hold the ``runtime_checkable`` protocols,
#: which do not survive mypyc (mypyc/mypyc#909), and are off the hot path.
INTERPRETED = frozenset({"counters.py", "protocols.py"})


def source_files() -> list[Path]:
    """Every Python file of the pipeline package, in a stable order."""
    return sorted(SOURCES.rglob("*.py"))


def source_digest() -> str:
    """sha256 over the pipeline's file names and contents and this Python's ABI."""
    digest = hashlib.sha256(str(sysconfig.get_config_var("SOABI")).encode())
    for path in source_files():
        digest.update(path.relative_to(SOURCES).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_state(build_dir: Path = BUILD_DIR) -> str:
    """``current``, ``stale`` (built from other sources or another Python) or
    ``missing``."""
    try:
        info = json.loads((build_dir / INFO_FILE).read_text())
    except (OSError, ValueError):
        return "missing"
    return "current" if info.get("digest") == source_digest() else "stale"


def mode() -> str:
    """``NEXUS_PIPELINE``: auto, compiled or python (anything else raises)."""
    value = os.environ.get("NEXUS_PIPELINE", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ImportError(
            f"NEXUS_PIPELINE={value!r} is not valid; use one of {', '.join(MODES)}."
        )
    return value


def activate(package_path: list[str], build_dir: Path = BUILD_DIR) -> bool:
    """Put the compiled pipeline in front of the sources on ``routing.__path__``
    when the mode allows and the build is current; return whether it did."""
    wanted = mode()
    if wanted == "python":
        return False
    state = build_state(build_dir)
    if state != "current":
        if wanted == "compiled":
            raise ImportError(
                f"NEXUS_PIPELINE=compiled but the compiled pipeline is {state} "
                f"({build_dir}); run 'python -m routing.dev.compile_pipeline', or set "
                "NEXUS_PIPELINE=auto to fall back to the sources."
            )
        if state == "stale":
            warnings.warn(
                "routing/pipeline changed since it was compiled: running the "
                "pure-Python pipeline. Run 'python -m routing.dev.compile_pipeline' "
                "(scripts/run does) to compile it again.",
                RuntimeWarning,
                stacklevel=2,
            )
        return False
    if str(build_dir) not in sys.path:
        sys.path.append(str(build_dir))  # mypyc's shared runtime module
    package_path.insert(0, str(build_dir / "routing"))
    return True


def is_compiled() -> bool:
    """Whether the imported pipeline is the compiled one."""
    import routing.pipeline.base

    return not str(routing.pipeline.base.__file__).endswith(".py")


def describe() -> str:
    """Which pipeline this process runs, for benchmark headers."""
    build = "compiled with mypyc" if is_compiled() else "pure Python"
    return f"{build}, NEXUS_PIPELINE={mode()}"


def build(build_dir: Path = BUILD_DIR) -> None:
    """Compile the pipeline with mypyc into ``build_dir`` (replacing it)."""
    from mypyc.build import mypycify  # only the build needs mypy
    from setuptools import setup  # type: ignore[import-untyped]  # first: distutils

    digest = source_digest()
    compiled = [
        str(p.relative_to(ROOT)) for p in source_files() if p.name not in INTERPRETED
    ]
    staging = Path(tempfile.mkdtemp(prefix="pipeline-", dir=build_dir.parent))
    work = Path(tempfile.mkdtemp(prefix="mypyc-"))
    cwd = Path.cwd()
    try:
        os.chdir(ROOT)  # mypyc names modules by their path from here
        setup(
            name="nexus-pipeline",
            packages=[],
            ext_modules=mypycify(
                ["--config-file", str(ROOT / "pyproject.toml"), *compiled],
                opt_level="3",
                target_dir=str(work / "c"),
            ),
            script_args=[
                "--quiet",
                "build_ext",
                "--build-lib",
                str(staging),
                "--build-temp",
                str(work / "o"),
                "--parallel",
                str(os.cpu_count() or 1),
            ],
        )
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
    for path in source_files():  # the interpreted modules, and sources to read
        target = staging / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (staging / INFO_FILE).write_text(json.dumps({"digest": digest}) + "\n")
    shutil.rmtree(build_dir, ignore_errors=True)
    staging.rename(build_dir)


def main(argv: list[str]) -> int:
    """``[--if-stale]``: build (only when missing or stale with the flag)."""
    if "--if-stale" in argv and build_state() == "current":
        return 0
    BUILD_DIR.parent.mkdir(parents=True, exist_ok=True)
    print("Compiling routing/pipeline with mypyc (about a minute) ...", flush=True)
    build()
    # Prove the build loads: a fresh interpreter that must use it.
    env = {**os.environ, "NEXUS_PIPELINE": "compiled"}
    check = "from routing.pipeline_build import is_compiled; assert is_compiled()"
    subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=env, check=True)
    print(f"Compiled pipeline ready in {BUILD_DIR}.")
    return 0
