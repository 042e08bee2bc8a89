"""Health probes: ask each enabled backend's real endpoint whether it is up.

Per kind: Ollama ``GET /api/tags``; vLLM, OpenAI-compatible, generic and
Anthropic ``GET /v1/models`` (``/models`` when the base URL already ends in
``/v1``); llama.cpp ``GET /health``. Probes run concurrently in a thread pool
with a short timeout; only the HTTP calls run in threads, the results are
written from the caller's thread, each in a short transaction under the
backend's row lock.

Rules:

- a success makes a backend ``healthy``; ``loading`` when the server says it is
  loading a model; ``unhealthy`` only after
  ``NEXUS_HEALTH_FAILURES_BEFORE_UNHEALTHY`` consecutive failures;
- latency and error rate are exponential moving averages (``EMA_ALPHA``);
- a probe never touches ``enabled``: disabled backends are not probed, and a
  backend disabled while its probe was in flight is not written;
- probed state is written with ``queryset.update`` (not audited, no config
  version); a change of health or of served models bumps
  ``ConfigVersion.state_version`` so routing snapshots rebuild;
- an admin may set the same observed fields through the backends API
  (``backend_observed_set``, for external health checkers): stored the same
  way, and ``state_version`` is bumped on any change;
- models a server lists that the backend does not serve yet are created with
  zero prices and every capability off, through ``config_save`` (audited as
  ``system:health-probe``); an admin sets their prices and capabilities.
  Models that disappear from the list are not deleted (a restarting server may
  list nothing for a while; an admin decides) — they are logged once;
- cloud kinds (``openai``, ``anthropic``) whose host is not loopback or a private
  address are not probed: their APIs need a key Nexus does not store, and the
  probe must never leave the operator's network uninvited. Their health stays
  as it is (``unknown`` is routable).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from routing import metrics
from routing.errors import NotFoundError
from routing.models import Backend, BackendModel, ConfigVersion
from routing.pipeline.types import Health
from routing.services.config import CONFIG_VERSION_PK, config_save

logger = logging.getLogger(__name__)

EMA_ALPHA = 0.3
PROBE_ACTOR = "system:health-probe"
MAX_PROBE_THREADS = 16
MAX_BODY_BYTES = 1_000_000
CLOUD_KINDS = frozenset({"openai", "anthropic"})
OPENAI_SHAPED_KINDS = frozenset({"vllm", "openai", "generic", "anthropic"})

# Models a backend no longer lists, per process: logged when the set changes.
_missing_logged: dict[int, frozenset[str]] = {}


@dataclass(frozen=True)
class ProbeResult:
    """What one HTTP probe saw. ``models`` is None when the endpoint lists none."""

    outcome: Health  # healthy, loading or unhealthy (= this probe failed)
    latency_ms: float | None = None
    models: tuple[str, ...] | None = None
    loading_eta_ms: int | None = None
    error: str = ""


@dataclass(frozen=True)
class ProbeTarget:
    """The plain values a probe thread needs (no model instances in threads)."""

    backend_id: int
    name: str
    kind: str
    base_url: str


def probe_url(*, kind: str, base_url: str) -> str:
    """The URL to probe for a backend of ``kind`` at ``base_url``."""
    base = base_url.rstrip("/")
    if kind == "ollama":
        return f"{base}/api/tags"
    if kind == "llamacpp":
        return f"{base}/health"
    if base.endswith("/v1"):
        return f"{base}/models"
    return f"{base}/v1/models"


def probe_allowed(*, kind: str, base_url: str) -> bool:
    """False for cloud kinds on public hosts (see the module docstring)."""
    if kind not in CLOUD_KINDS:
        return True
    host = (urlparse(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a DNS name: not resolved here, treated as public
    return address.is_loopback or address.is_private or address.is_link_local


def _looks_loading(body: bytes) -> bool:
    return b"loading" in body.lower()


def _loading_eta(payload: object) -> int | None:
    if isinstance(payload, dict):
        value = payload.get("loading_eta_ms")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _parse_models(kind: str, payload: object) -> tuple[str, ...] | None:
    """The served model names, or raise ValueError when the body has the wrong shape."""
    if kind == "llamacpp":
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object")
        status = payload.get("status")
        if status not in {"ok", "no slot available"}:
            raise ValueError(f"status is {status!r}")
        return None
    key, name_key = ("models", "name") if kind == "ollama" else ("data", "id")
    if not isinstance(payload, dict) or not isinstance(payload.get(key), list):
        raise ValueError(f"expected a JSON object with a {key!r} list")
    names: list[str] = []
    for item in payload[key]:
        if not isinstance(item, dict) or not isinstance(item.get(name_key), str):
            raise ValueError(f"each {key!r} item needs a string {name_key!r}")
        names.append(item[name_key])
    return tuple(dict.fromkeys(names))


def backend_probe_http(*, kind: str, base_url: str, timeout: float) -> ProbeResult:
    """One HTTP probe; never raises. No database access (runs in threads)."""
    url = probe_url(kind=kind, base_url=base_url)
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "nexus-probe"}
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(MAX_BODY_BYTES)
    except urllib.error.HTTPError as exc:
        body = exc.read(MAX_BODY_BYTES) if exc.fp is not None else b""
        if exc.code == 503 and _looks_loading(body):
            try:
                eta = _loading_eta(json.loads(body))
            except ValueError:
                eta = None
            return ProbeResult(outcome=Health.LOADING, loading_eta_ms=eta)
        return ProbeResult(outcome=Health.UNHEALTHY, error=f"HTTP {exc.code}")
    except OSError as exc:  # URLError, timeouts, refused and reset connections
        reason = getattr(exc, "reason", exc)
        return ProbeResult(outcome=Health.UNHEALTHY, error=str(reason) or "timeout")
    except Exception as exc:  # noqa: BLE001 - a probe must never raise
        return ProbeResult(outcome=Health.UNHEALTHY, error=repr(exc))
    latency_ms = (time.monotonic() - started) * 1000
    try:
        models = _parse_models(kind, json.loads(body))
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        return ProbeResult(
            outcome=Health.UNHEALTHY, error=f"unexpected body from {url}: {exc}"
        )
    return ProbeResult(outcome=Health.HEALTHY, latency_ms=latency_ms, models=models)


def _ema(old: float | None, sample: float) -> float:
    return sample if old is None else EMA_ALPHA * sample + (1 - EMA_ALPHA) * old


def _state_version_bump() -> None:
    ConfigVersion.objects.filter(pk=CONFIG_VERSION_PK).update(
        state_version=F("state_version") + 1
    )


def _models_add(*, backend: Backend, names: Iterable[str]) -> list[str]:
    added = []
    for name in names:
        offer = BackendModel(backend=backend, name=name)
        try:
            config_save(instance=offer, actor=PROBE_ACTOR)
        except ValidationError as exc:
            logger.warning(
                "Backend %s lists model %r, which cannot be added: %s",
                backend.name,
                name,
                "; ".join(exc.messages),
            )
            continue
        added.append(name)
    if added:
        logger.info(
            "Backend %s serves new model(s) %s: added with zero prices and "
            "capabilities off until an admin sets them",
            backend.name,
            ", ".join(added),
        )
    return added


def _note_missing(backend: Backend, known: set[str], served: set[str]) -> None:
    missing = frozenset(known - served)
    if _missing_logged.get(backend.pk, frozenset()) != missing and missing:
        logger.warning(
            "Backend %s no longer lists %s; kept (an admin decides whether to remove)",
            backend.name,
            ", ".join(sorted(missing)),
        )
    _missing_logged[backend.pk] = missing


@transaction.atomic
def backend_probe_apply(
    *,
    backend_id: int,
    result: ProbeResult,
    probed_url: str | None = None,
    now: datetime | None = None,
) -> Backend | None:
    """Write one probe's result to the backend's probed state; return the row.

    Returns None (and writes nothing) when the backend is gone or disabled, or
    when its base URL is no longer ``probed_url`` (an admin changed it while the
    probe ran; the probe scheduled after that change will report instead).
    """
    backend = (
        Backend.objects.select_for_update().filter(pk=backend_id, enabled=True).first()
    )
    if backend is None:
        return None
    if probed_url is not None and backend.base_url != probed_url:
        return None
    now = now or timezone.now()
    failures_allowed = settings.NEXUS_HEALTH_FAILURES_BEFORE_UNHEALTHY
    values: dict[str, object] = {"last_probe_at": now}
    if result.outcome is Health.UNHEALTHY:
        failures = backend.consecutive_failures + 1
        values["consecutive_failures"] = failures
        values["error_rate"] = min(1.0, _ema(backend.error_rate, 1.0))
        if failures >= failures_allowed:
            values["health"] = Health.UNHEALTHY.value
            values["loading_eta_ms"] = None
        logger.log(
            logging.INFO if failures <= failures_allowed else logging.DEBUG,
            "Probe of %s failed (%d in a row): %s",
            backend.name,
            failures,
            result.error,
        )
    else:
        values["consecutive_failures"] = 0
        values["error_rate"] = max(0.0, _ema(backend.error_rate, 0.0))
        values["health"] = result.outcome.value
        values["loading_eta_ms"] = result.loading_eta_ms
        if result.latency_ms is not None:
            values["latency_ema_ms"] = _ema(backend.latency_ema_ms, result.latency_ms)
    if backend.unhealthy_until is not None and backend.unhealthy_until > now:
        # Passive health's cool-down (open circuit, 429) holds until it ends.
        values.pop("health", None)
    elif "health" in values:
        values["health_reason"] = ""
        values["unhealthy_until"] = None
    changed = "health" in values and values["health"] != backend.health
    Backend.objects.filter(pk=backend_id, enabled=True).update(**values)
    if changed:
        logger.info(
            "Backend %s is now %s (was %s)",
            backend.name,
            values["health"],
            backend.health,
        )
    if result.models is not None:
        known = set(backend.models.values_list("name", flat=True))
        served = set(result.models)
        added = _models_add(
            backend=backend, names=[n for n in result.models if n not in known]
        )
        changed = changed or bool(added)
        _note_missing(backend, known, served)
    if changed:
        _state_version_bump()
    for field, value in values.items():
        setattr(backend, field, value)
    return backend


#: Probed state an external health checker may set through the backends API.
OBSERVED_FIELDS = (
    "health",
    "loading_eta_ms",
    "pending_requests",
    "latency_ema_ms",
    "error_rate",
)
#: The largest value a PositiveIntegerField holds on every supported database.
_MAX_COUNT = 2_147_483_647
_HEALTH_VALUES = tuple(h.value for h in Health)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def observed_value_error(field: str, value: object) -> str | None:
    """What is wrong with ``value`` for the observed ``field``, or None if it is fine."""
    if field == "health":
        if value in _HEALTH_VALUES:
            return None
        return f"Health must be one of {', '.join(_HEALTH_VALUES)}."
    if field in {"loading_eta_ms", "pending_requests"}:
        if (value is None and field == "loading_eta_ms") or (
            _whole(value) and 0 <= value <= _MAX_COUNT  # type: ignore[operator]
        ):
            return None
        if field == "loading_eta_ms":
            return (
                "Loading ETA must be a whole number of milliseconds from 0 to "
                f"{_MAX_COUNT}, or null when unknown."
            )
        return f"Pending requests must be a whole number from 0 to {_MAX_COUNT}."
    if field == "latency_ema_ms":
        if value is None or (_number(value) and value >= 0):  # type: ignore[operator]
            return None
        return "Latency must be a number of milliseconds, 0 or more, or null."
    if field == "error_rate":
        if _number(value) and 0 <= value <= 1:  # type: ignore[operator]
            return None
        return "Error rate must be a number between 0 and 1 (0.05 is 5 %)."
    return f"Not an observed field; these are {', '.join(OBSERVED_FIELDS)}."


@transaction.atomic
def backend_observed_set(*, backend: Backend, values: Mapping[str, object]) -> Backend:
    """Store observed fields as a probe result is stored; return ``backend`` updated.

    For external health checkers (through the backends API, admin keys only):
    not audited and no config version, but ``state_version`` is bumped when a
    value changes, so routing sees it on its next call. The next probe of the
    backend reports over it, as probes do over each other.

    Raises ValidationError naming every bad field; then nothing is written.
    """
    errors = {
        field: [message]
        for field, value in values.items()
        if (message := observed_value_error(field, value)) is not None
    }
    if errors:
        raise ValidationError(errors)
    current = (
        Backend.objects.select_for_update()
        .filter(pk=backend.pk)
        .values(*OBSERVED_FIELDS)
        .first()
    )
    if current is None:
        raise NotFoundError(f"Backend {backend.name!r} no longer exists.")
    changed = {f: v for f, v in values.items() if current[f] != v}
    if changed:
        Backend.objects.filter(pk=backend.pk).update(**changed)
        _state_version_bump()
    if "health" in changed:
        logger.info(
            "Backend %s is now %s (was %s), set through the API",
            backend.name,
            changed["health"],
            current["health"],
        )
    for field in OBSERVED_FIELDS:
        setattr(backend, field, changed.get(field, current[field]))
    return backend


def _targets(queryset: Iterable[Backend]) -> list[ProbeTarget]:
    targets = []
    for backend in queryset:
        if not probe_allowed(kind=backend.kind, base_url=backend.base_url):
            logger.debug("Not probing cloud backend %s", backend.name)
            continue
        targets.append(
            ProbeTarget(
                backend_id=backend.pk,
                name=backend.name,
                kind=backend.kind,
                base_url=backend.base_url,
            )
        )
    return targets


def _probe_targets(
    targets: list[ProbeTarget], timeout: float
) -> list[tuple[ProbeTarget, ProbeResult]]:
    if not targets:
        return []
    workers = min(MAX_PROBE_THREADS, len(targets))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
        results = pool.map(
            lambda t: backend_probe_http(
                kind=t.kind, base_url=t.base_url, timeout=timeout
            ),
            targets,
        )
        return list(zip(targets, results, strict=True))


def backend_probe_all(*, timeout: float | None = None) -> dict[str, str]:
    """Probe every enabled backend concurrently; return ``{name: health}`` written."""
    timeout = timeout or settings.NEXUS_HEALTH_PROBE_TIMEOUT_SECONDS
    targets = _targets(Backend.objects.filter(enabled=True).order_by("pk"))
    outcome: dict[str, str] = {}
    for target, result in _probe_targets(targets, timeout):
        backend = backend_probe_apply(
            backend_id=target.backend_id, result=result, probed_url=target.base_url
        )
        if backend is not None:
            outcome[backend.name] = backend.health
    return outcome


def backend_probe(*, backend_id: int, timeout: float | None = None) -> str | None:
    """Probe one backend now; return its health, or None if not probed."""
    timeout = timeout or settings.NEXUS_HEALTH_PROBE_TIMEOUT_SECONDS
    targets = _targets(Backend.objects.filter(pk=backend_id, enabled=True))
    for target, result in _probe_targets(targets, timeout):
        backend = backend_probe_apply(
            backend_id=target.backend_id, result=result, probed_url=target.base_url
        )
        return backend.health if backend is not None else None
    return None


#: How hard to try publishing a follow-up task: one quick retry (a pooled
#: connection may be stale after a broker restart), then give up. Celery's
#: default (3 retries) and ``retry=False`` (which falls back to the connection's
#: own reconnect loop, about 6 s) would hold the request while the broker is down.
PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}


def task_enqueue(
    task: Any, args: tuple[Any, ...], *, about: str, fallback: str
) -> bool:
    """Send ``task`` with ``args`` now; False (logged, counted in
    ``nexus_enqueue_failures``) when the broker refuses, never an exception:
    callers run after a commit, and a committed write must not turn into an
    error. ``about`` names what it was for, ``fallback`` what catches up."""
    try:
        task.apply_async(args=args, retry=True, retry_policy=PUBLISH_RETRY_POLICY)
    except Exception as exc:  # noqa: BLE001 - any broker failure; the beat catches up
        metrics.enqueue_failed(task.name)
        logger.warning(
            "Could not enqueue %s for %s (%s: %s); %s",
            task.name,
            about,
            type(exc).__name__,
            exc,
            fallback,
        )
        return False
    return True


def backend_probe_enqueue(backend_id: int, backend_name: str = "") -> bool:
    """Send the probe task now; return False (logged, counted) when the broker
    refuses. The periodic ``backend_probe_all`` run probes the backend anyway
    within ``NEXUS_HEALTH_PROBE_INTERVAL_SECONDS``."""
    from routing.tasks import backend_probe

    return task_enqueue(
        backend_probe,
        (backend_id,),
        about=f"backend {backend_name or '?'} (id {backend_id})",
        fallback="the periodic probe will pick it up",
    )


def backend_probe_soon(*, backend_id: int, backend_name: str = "") -> None:
    """Probe this backend right after the current transaction commits.

    Call it after creating a backend or changing its URL, kind or ``enabled``,
    so its health is known within seconds instead of at the next beat. A broker
    outage is logged and counted, never raised (see ``backend_probe_enqueue``).
    """
    transaction.on_commit(partial(backend_probe_enqueue, backend_id, backend_name))
