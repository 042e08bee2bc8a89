"""The Procfile's worker stops cleanly on Ctrl-C: a warm shutdown, no ERROR lines.

The worker line runs as honcho runs it (a shell in a new session), against a
temporary data directory and the filesystem broker, and then gets the signal a
process manager or a terminal sends to its whole process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_S = 90.0
STOP_S = 25.0  # well below scripts/run's grace (nexus_site.procfile)


def procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name!r} line in the Procfile")


def worker_env(data_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL")
    }
    return env | {
        "NEXUS_DATA_DIR": str(data_dir),
        "DJANGO_SECRET_KEY": "test",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }


def run_until_ready_then_signal(
    command: list[str] | str, data_dir: Path, signum: signal.Signals
) -> tuple[int, str, float]:
    """Start ``command`` in a new session, wait for the worker to be ready, signal
    the session's process group; return the exit code, the output and how long
    stopping took."""
    process = subprocess.Popen(
        command,
        shell=isinstance(command, str),
        cwd=ROOT,
        env=worker_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # as honcho starts a Procfile line
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + START_S
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if " ready." in line or not line:
                break
        assert any(" ready." in line for line in lines), "".join(lines)
        time.sleep(1.0)  # let the pool processes settle
        os.killpg(process.pid, signum)
        started = time.monotonic()
        rest, _ = process.communicate(timeout=STOP_S)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, "".join(lines) + rest, took


def test_the_procfile_worker_stops_warm_when_its_process_group_gets_sigterm(
    tmp_path: Path,
) -> None:
    """What honcho does to each process on Ctrl-C."""
    rc, output, took = run_until_ready_then_signal(
        procfile_line("worker"), tmp_path, signal.SIGTERM
    )
    assert rc == 0, output
    assert "Warm shutdown" in output
    assert "ERROR" not in output, output
    assert took < STOP_S


def test_ctrl_c_on_honcho_stops_the_worker_warm_before_any_sigkill(
    tmp_path: Path,
) -> None:
    """Ctrl-C in the terminal running ``scripts/run``: SIGINT to honcho's group."""
    assert "python -m nexus_site.procfile start" in (ROOT / "scripts/run").read_text()
    procfile = tmp_path / "Procfile"
    procfile.write_text(f"worker: {procfile_line('worker')}\n")
    rc, output, took = run_until_ready_then_signal(
        # as scripts/run starts honcho
        [sys.executable, "-m", "nexus_site.procfile", "start", "-f", str(procfile)]
        + ["-d", str(ROOT)],
        tmp_path,
        signal.SIGINT,
    )
    assert rc == 130, output  # honcho's own code after SIGINT
    assert "worker.1 stopped (rc=0)" in output, output
    assert "SIGKILL" not in output and "ERROR" not in output, output
    assert took < STOP_S
