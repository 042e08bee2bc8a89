"""Health probes call each backend's real endpoint and record what they see."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from routing.models import AuditEntry, Backend, ConfigVersion
from routing.services.config import config_version_current
from routing.services.health import (
    backend_probe,
    backend_probe_all,
    backend_probe_apply,
    backend_probe_http,
    backend_probe_soon,
    probe_allowed,
    probe_url,
)
from tests.factories import BackendFactory, BackendModelFactory
from tests.http_servers import FakeBackend

pytestmark = pytest.mark.django_db

TIMEOUT = 0.5


@pytest.fixture
def server() -> Iterator[FakeBackend]:
    fake = FakeBackend(models=["llama3.1:8b"]).start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _three_failures_before_unhealthy(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NEXUS_HEALTH_FAILURES_BEFORE_UNHEALTHY = 3


def ollama_backend(fake: FakeBackend, **fields: object) -> Backend:
    backend = BackendFactory(kind="ollama", base_url=fake.url, **fields)
    BackendModelFactory(backend=backend, name="llama3.1:8b")
    return backend


def state_version() -> int:
    return ConfigVersion.objects.get(pk=1).state_version


def probe(backend: Backend) -> Backend:
    backend_probe(backend_id=backend.pk, timeout=TIMEOUT)
    return Backend.objects.get(pk=backend.pk)


def test_the_probe_url_depends_on_the_kind() -> None:
    assert probe_url(kind="ollama", base_url="http://h:11434/") == (
        "http://h:11434/api/tags"
    )
    assert probe_url(kind="vllm", base_url="http://h:8000") == "http://h:8000/v1/models"
    assert probe_url(kind="openai", base_url="http://h/v1") == "http://h/v1/models"
    assert probe_url(kind="generic", base_url="http://h/v1/") == "http://h/v1/models"
    assert (
        probe_url(kind="llamacpp", base_url="http://h:8080") == "http://h:8080/health"
    )


def test_cloud_kinds_are_probed_only_on_loopback_or_private_hosts() -> None:
    assert not probe_allowed(kind="openai", base_url="https://api.openai.com/v1")
    assert not probe_allowed(kind="anthropic", base_url="https://8.8.8.8/v1")
    assert probe_allowed(kind="openai", base_url="http://127.0.0.1:4000/v1")
    assert probe_allowed(kind="anthropic", base_url="http://10.1.2.3/v1")
    assert probe_allowed(kind="openai", base_url="http://localhost:4000")
    assert probe_allowed(kind="vllm", base_url="https://gpu.example.com")


def test_an_ollama_backend_that_answers_becomes_healthy(server: FakeBackend) -> None:
    backend = probe(ollama_backend(server))
    assert server.requests == ["/api/tags"]
    assert backend.health == "healthy"
    assert backend.consecutive_failures == 0
    assert backend.latency_ema_ms is not None and backend.latency_ema_ms > 0
    assert backend.last_probe_at is not None


def test_an_openai_compatible_backend_is_probed_at_v1_models(
    server: FakeBackend,
) -> None:
    plain = BackendFactory(kind="vllm", base_url=server.url)
    with_v1 = BackendFactory(kind="generic", base_url=f"{server.url}/v1")
    BackendModelFactory(backend=plain, name="llama3.1:8b")
    BackendModelFactory(backend=with_v1, name="llama3.1:8b")
    assert probe(plain).health == "healthy"
    assert probe(with_v1).health == "healthy"
    assert server.requests == ["/v1/models", "/v1/models"]


def test_a_llamacpp_backend_is_healthy_or_loading_by_its_health_endpoint(
    server: FakeBackend,
) -> None:
    backend = BackendFactory(kind="llamacpp", base_url=server.url)
    assert probe(backend).health == "healthy"
    server.behaviour = "loading"
    assert probe(backend).health == "loading"
    assert server.requests == ["/health", "/health"]


def test_a_loading_server_is_not_counted_as_a_failure(server: FakeBackend) -> None:
    server.behaviour = "loading"
    backend = probe(ollama_backend(server, consecutive_failures=2))
    assert backend.health == "loading"
    assert backend.consecutive_failures == 0


def test_a_backend_becomes_unhealthy_only_after_three_failures_in_a_row(
    server: FakeBackend,
) -> None:
    backend = probe(ollama_backend(server))
    server.behaviour = "500"
    assert probe(backend).health == "healthy"
    assert probe(backend).health == "healthy"
    backend = probe(backend)
    assert backend.health == "unhealthy"
    assert backend.consecutive_failures == 3
    assert 0 < backend.error_rate < 1


def test_a_server_slower_than_the_timeout_counts_as_a_failure(
    server: FakeBackend,
) -> None:
    server.delay_s = TIMEOUT + 0.3
    backend = probe(ollama_backend(server, health="healthy"))
    assert backend.consecutive_failures == 1
    assert backend.health == "healthy"  # one failure is not enough
    result = backend_probe_http(kind="ollama", base_url=server.url, timeout=0.2)
    assert result.outcome == "unhealthy"
    assert "timed out" in result.error


@pytest.mark.parametrize("behaviour", ["garbage", "wrong-shape"])
def test_a_body_that_is_not_a_model_list_counts_as_a_failure(
    server: FakeBackend, behaviour: str
) -> None:
    server.behaviour = behaviour
    result = backend_probe_http(kind="ollama", base_url=server.url, timeout=TIMEOUT)
    assert result.outcome == "unhealthy"
    assert "unexpected body" in result.error
    assert probe(ollama_backend(server)).consecutive_failures == 1


def test_a_server_that_goes_down_and_comes_back_is_unhealthy_then_healthy(
    server: FakeBackend,
) -> None:
    backend = probe(ollama_backend(server))
    assert backend.health == "healthy"
    server.stop()
    before = state_version()
    for _ in range(3):
        backend = probe(backend)
    assert backend.health == "unhealthy"
    assert state_version() == before + 1  # one change of health, one bump
    server.start()
    backend = probe(backend)
    assert backend.health == "healthy"
    assert backend.consecutive_failures == 0
    assert state_version() == before + 2


def test_an_unchanged_health_does_not_bump_the_state_version(
    server: FakeBackend,
) -> None:
    backend = probe(ollama_backend(server))
    before = state_version()
    probe(backend)
    assert state_version() == before


def test_latency_and_error_rate_are_moving_averages(server: FakeBackend) -> None:
    backend = ollama_backend(server, latency_ema_ms=1000.0, error_rate=0.5)
    backend = probe(backend)
    assert 300 < backend.latency_ema_ms < 1000  # 0.3 * sample + 0.7 * 1000
    assert backend.error_rate == pytest.approx(0.35)


def test_new_served_models_are_added_free_and_incapable_and_audited(
    server: FakeBackend,
) -> None:
    backend = ollama_backend(server)
    server.models = ["llama3.1:8b", "mistral:7b"]
    version, states = config_version_current(), state_version()
    probe(backend)
    added = backend.models.get(name="mistral:7b")
    assert added.input_cost_per_1k == added.output_cost_per_1k == Decimal(0)
    assert not (added.vision or added.tools or added.json_mode)
    assert AuditEntry.objects.filter(
        actor="system:health-probe", object_name=f"{backend.name}/mistral:7b"
    ).exists()
    assert config_version_current() == version + 1
    assert state_version() == states + 1
    probe(backend)
    assert backend.models.count() == 2  # the next probe adds nothing again


def test_models_that_disappear_from_the_list_are_kept(server: FakeBackend) -> None:
    backend = ollama_backend(server)
    server.models = []
    assert probe(backend).health == "healthy"
    assert list(backend.models.values_list("name", flat=True)) == ["llama3.1:8b"]


def test_disabled_backends_are_not_probed_and_stay_disabled(
    server: FakeBackend,
) -> None:
    backend = ollama_backend(server, enabled=False)
    assert backend_probe_all(timeout=TIMEOUT) == {}
    assert server.requests == []
    backend.refresh_from_db()
    assert backend.enabled is False
    assert backend.health == "unknown"


def test_a_backend_disabled_while_its_probe_ran_is_not_written(
    server: FakeBackend,
) -> None:
    backend = ollama_backend(server)
    result = backend_probe_http(kind="ollama", base_url=server.url, timeout=TIMEOUT)
    Backend.objects.filter(pk=backend.pk).update(enabled=False)
    assert backend_probe_apply(backend_id=backend.pk, result=result) is None
    backend.refresh_from_db()
    assert (backend.enabled, backend.health, backend.last_probe_at) == (
        False,
        "unknown",
        None,
    )


def test_a_probe_of_a_url_the_admin_changed_meanwhile_is_not_written(
    server: FakeBackend,
) -> None:
    backend = ollama_backend(server)
    result = backend_probe_http(kind="ollama", base_url=server.url, timeout=TIMEOUT)
    Backend.objects.filter(pk=backend.pk).update(base_url="http://127.0.0.1:9")
    written = backend_probe_apply(
        backend_id=backend.pk, result=result, probed_url=server.url
    )
    assert written is None
    assert Backend.objects.get(pk=backend.pk).health == "unknown"


def test_cloud_backends_on_public_hosts_are_left_alone(server: FakeBackend) -> None:
    cloud = BackendFactory(kind="openai", base_url="https://api.openai.com/v1")
    local = ollama_backend(server)
    assert backend_probe_all(timeout=TIMEOUT) == {local.name: "healthy"}
    cloud.refresh_from_db()
    assert cloud.health == "unknown" and cloud.last_probe_at is None


def test_backends_are_probed_concurrently() -> None:
    fakes = [FakeBackend().start() for _ in range(4)]
    try:
        for fake in fakes:
            fake.delay_s = 0.3
            ollama_backend(fake)
        started = time.monotonic()
        healths = backend_probe_all(timeout=2)
        elapsed = time.monotonic() - started
    finally:
        for fake in fakes:
            fake.stop()
    assert set(healths.values()) == {"healthy"}
    assert elapsed < 0.9  # four 0.3 s probes one after another would take 1.2 s


def test_probing_soon_enqueues_the_probe_only_after_commit(
    django_capture_on_commit_callbacks, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from routing import tasks

    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        tasks.backend_probe, "apply_async", lambda args, **options: sent.append(args)
    )
    backend = BackendFactory()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        backend_probe_soon(backend_id=backend.pk)
        assert sent == []
    assert len(callbacks) == 1
    assert sent == [(backend.pk,)]
