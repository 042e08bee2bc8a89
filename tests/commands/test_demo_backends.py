"""The demo server answers like the demo fleet's local backends and can take one down."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from routing.demo_server import (
    ANSWER_CHUNKS,
    DemoBackend,
    DemoFleetServer,
    demo_answer,
    demo_backend_specs,
)
from routing.models import Backend
from routing.services.config import config_version_current
from routing.services.demo import demo_fleet_load
from routing.services.health import backend_probe_all, backend_probe_http


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[DemoFleetServer]:
    """The demo servers on free ports (the real ones may be taken by scripts/run)."""
    specs = demo_backend_specs()
    for spec in specs:
        spec.port = 0
    server = DemoFleetServer(specs, tmp_path / "demo-backends")
    server.sync()
    yield server
    server.close()


def urls(fleet: DemoFleetServer) -> dict[str, str]:
    return {b.name: f"http://127.0.0.1:{b.port}" for b in fleet.backends}


def sdk(backend: DemoBackend) -> openai.OpenAI:
    """The official OpenAI client pointed straight at one demo backend."""
    return openai.OpenAI(
        api_key="not-needed",
        base_url=f"http://127.0.0.1:{backend.port}/v1",
        max_retries=0,
        timeout=5,
    )


QUESTION = [
    {"role": "user", "content": "Which backend are you? Tell me, please."}
]  # 39 chars: 9 tokens


def test_only_the_local_demo_backends_are_served() -> None:
    specs = {spec.name: spec for spec in demo_backend_specs()}
    assert set(specs) == {"ollama-workstation", "ollama-rack", "vllm-a100"}
    assert specs["ollama-rack"].port == 18435
    assert specs["vllm-a100"].models == ["llama3.1:70b", "llama3.1:8b"]


def test_each_demo_backend_lists_its_models_in_the_shape_of_its_kind(
    fleet: DemoFleetServer,
) -> None:
    for backend in fleet.backends:
        url = urls(fleet)[backend.name]
        result = backend_probe_http(kind=backend.kind, base_url=url, timeout=2)
        assert result.outcome == "healthy"
        assert list(result.models or ()) == backend.models


@pytest.mark.django_db
def test_the_demo_fleet_probed_against_the_demo_server_is_healthy_and_unchanged(
    fleet: DemoFleetServer,
) -> None:
    demo_fleet_load()
    for name, url in urls(fleet).items():
        Backend.objects.filter(name=name).update(base_url=url)
    version = config_version_current()
    assert backend_probe_all(timeout=2) == {
        "vllm-a100": "healthy",
        "ollama-workstation": "healthy",
        "ollama-rack": "healthy",
    }
    assert config_version_current() == version  # no model was new to the fleet
    assert Backend.objects.get(name="openai").health == "unknown"  # never probed


def test_a_backend_marked_down_closes_its_port_and_comes_back_when_unmarked(
    fleet: DemoFleetServer,
) -> None:
    rack = next(b for b in fleet.backends if b.name == "ollama-rack")
    url = urls(fleet)["ollama-rack"]
    marker = fleet.control_dir / "ollama-rack.down"
    marker.touch()
    fleet.sync()
    down = backend_probe_http(kind="ollama", base_url=url, timeout=1)
    assert down.outcome == "unhealthy"
    assert "refused" in down.error.lower()
    marker.unlink()
    fleet.sync()
    assert rack.server is not None
    up = backend_probe_http(kind="ollama", base_url=url, timeout=1)
    assert up.outcome == "healthy"


def test_the_command_marks_backends_down_and_up(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.DATA_DIR = tmp_path
    call_command("demo_backends", stop=["vllm-a100"])
    assert (tmp_path / "demo-backends" / "vllm-a100.down").exists()
    call_command("demo_backends", start=["vllm-a100"])
    assert not (tmp_path / "demo-backends" / "vllm-a100.down").exists()
    with pytest.raises(CommandError, match="not a local demo backend: openai"):
        call_command("demo_backends", stop=["openai"])


def test_the_running_server_follows_markers_on_its_own(tmp_path: Path) -> None:
    [spec] = demo_backend_specs(["ollama-workstation"])
    spec.port = 0
    fleet = DemoFleetServer([spec], tmp_path)
    thread = threading.Thread(
        target=fleet.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while spec.server is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert spec.server is not None
        (tmp_path / "ollama-workstation.down").touch()
        while spec.server is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert spec.server is None
    finally:
        fleet.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_each_demo_backend_answers_a_chat_completion_naming_itself_and_its_model(
    fleet: DemoFleetServer,
) -> None:
    for backend in fleet.backends:
        model = backend.models[-1]
        answer = sdk(backend).chat.completions.create(model=model, messages=QUESTION)

        content = answer.choices[0].message.content
        assert content == demo_answer(backend, model)
        assert content.startswith(f"Hello from {backend.name} (model {model}).")
        assert answer.model == model
        assert answer.usage is not None
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
            9,
            ANSWER_CHUNKS,
        )


def test_a_demo_backend_streams_its_answer_in_visible_steps_and_then_usage(
    fleet: DemoFleetServer,
) -> None:
    backend = next(b for b in fleet.backends if b.name == "ollama-workstation")
    arrivals: list[float] = []
    pieces: list[str] = []

    stream = sdk(backend).chat.completions.create(
        model="llama3.1:8b",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
            pieces.append(chunk.choices[0].delta.content)

    assert "".join(pieces) == demo_answer(backend, "llama3.1:8b")
    assert len(pieces) == ANSWER_CHUNKS
    assert arrivals[-1] - arrivals[0] >= 0.3  # 7 gaps of 50 ms: streaming shows
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, ANSWER_CHUNKS)


def test_a_demo_stream_without_include_usage_has_no_usage_chunk(
    fleet: DemoFleetServer,
) -> None:
    backend = next(b for b in fleet.backends if b.name == "vllm-a100")

    chunks = list(
        sdk(backend).chat.completions.create(
            model="llama3.1:70b", messages=QUESTION, stream=True
        )
    )

    assert len(chunks) == ANSWER_CHUNKS + 1
    assert all(c.choices and c.usage is None for c in chunks)


def test_a_demo_backend_does_not_answer_for_a_model_it_does_not_serve(
    fleet: DemoFleetServer,
) -> None:
    backend = next(b for b in fleet.backends if b.name == "ollama-rack")

    with pytest.raises(openai.NotFoundError) as caught:
        sdk(backend).chat.completions.create(model="gpt-4o", messages=QUESTION)

    assert caught.value.code == "model_not_found"
