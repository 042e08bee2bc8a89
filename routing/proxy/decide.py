"""Step 1 of a proxied request, synchronous: authenticate, validate, decide.

``DecideView`` is a DRF view so the proxy shares the REST API's API keys, rate
limits, strict JSON parser and error shape. It answers errors itself (401, 400,
404 ``model_not_found``, 503 ``no_viable_backend`` / ``backend_loading``) and
otherwise returns a ``Plan`` on ``response.plan``: the recorded decision and the
upstreams to try, in order (the decision's backend first, then the other
candidates in score order).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing import metrics
from routing.adapters import config_snapshot, last_config_snapshot
from routing.api.auth import ApiClient, ApiKeyAuthentication, client_name
from routing.api.exceptions import error_body
from routing.api.renderers import FastJSONRenderer
from routing.api.routing_input import (
    request_id_from,
    routing_request_from,
    validated_route_body,
)
from routing.errors import NexusError
from routing.models import Backend
from routing.pipeline import MODEL_NOT_FOUND, RoutingResult
from routing.pipeline.types import Health, Outcome
from routing.services.passive_health import (
    HALF_OPEN,
    circuits_half_open,
    in_flight_counts,
)
from routing.services.routing import route_request

BACKEND_LOADING = "backend_loading"


@dataclass(frozen=True)
class Target:
    """One upstream the proxy may try."""

    backend: str
    base_url: str
    api_key_env: str
    half_open: bool = False


@dataclass
class Plan:
    """A recorded decision and how to carry it out."""

    decision_id: uuid.UUID
    request_id: str
    body: dict[str, Any]
    model: str
    stream: bool
    targets: list[Target] = field(default_factory=list)


#: How long this process trusts the backend -> ``api_key_env`` map it read.
KEY_ENVS_MAX_AGE_S = 1.0


def _api_key_envs() -> Mapping[str, str]:
    """Backend name -> the environment variable naming its upstream key (read
    at most once a second per process, before the decision is recorded)."""
    now = time.monotonic()
    read_at, cached = _key_envs.get("map", (-math.inf, {}))
    if now - read_at > KEY_ENVS_MAX_AGE_S:
        rows = Backend.objects.exclude(api_key_env="").values_list(
            "name", "api_key_env"
        )
        cached = dict(rows)
        _key_envs["map"] = (now, cached)
    return cached


_key_envs: dict[str, tuple[float, Mapping[str, str]]] = {}


def _check_openai_fields(data: dict[str, Any]) -> None:
    """Refuse what the proxy cannot forward: dry runs, a non-boolean ``stream``."""
    nexus = data.get("nexus")
    if isinstance(nexus, dict) and nexus.get("dry_run"):
        raise NexusError(
            "nexus.dry_run is not allowed on /v1/chat/completions (it would "
            "forward nothing); use POST /api/v1/route for a dry run.",
            fields={"nexus.dry_run": ["Not allowed here."]},
        )
    if "stream" in data and not isinstance(data["stream"], bool | None):
        raise NexusError(
            "stream must be true or false.", fields={"stream": ["true or false"]}
        )
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise NexusError(
            "stream_options must be an object.",
            fields={"stream_options": ['An object, e.g. {"include_usage": true}.']},
        )


class DecideView(APIView):
    """Authenticate, validate and decide a ``/v1/chat/completions`` request."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [FastJSONRenderer]

    def post(self, request: Request) -> Response:
        request_id = request_id_from(request.headers)
        data = request.data
        if not isinstance(data, dict):
            raise NexusError(
                "The body must be a JSON object (an OpenAI chat-completions request).",
                fields={"non_field_errors": ["A JSON object."]},
            )
        _check_openai_fields(data)
        routing_request, _ = routing_request_from(
            validated_route_body(data), request.headers
        )
        circuits_half_open()
        key_envs = _api_key_envs()
        user: Any = request.user
        outcome = route_request(
            request=routing_request,
            request_id=request_id,
            client=client_name(request),
            api_key_id=user.key_id if isinstance(user, ApiClient) else None,
            in_flight=in_flight_counts(),
        )
        result = outcome.result
        if outcome.decision_id is not None:
            metrics.decision_observed(result, outcome.duration_us)
        headers = {"X-Request-ID": request_id}
        if outcome.decision_id is not None:
            headers["X-Nexus-Decision-Id"] = str(outcome.decision_id)
        if result.outcome is Outcome.REJECT:
            status = 404 if result.error_type == MODEL_NOT_FOUND else 503
            body = {"decision_id": headers.get("X-Nexus-Decision-Id")}
            body.update(result.to_dict())
            return Response(body, status=status, headers=headers)
        if result.outcome is Outcome.QUEUE and not result.fallback_backend:
            wait_ms = result.estimated_wait_ms or 0
            retry_after = max(1, math.ceil(wait_ms / 1000))
            message = (
                f"Backend '{result.backend_name}' is loading model "
                f"'{result.model}'; retry in about {retry_after} s."
            )
            return Response(
                error_body(
                    BACKEND_LOADING,
                    message,
                    decision_id=headers.get("X-Nexus-Decision-Id"),
                    estimated_wait_ms=wait_ms,
                ),
                status=503,
                headers={**headers, "Retry-After": str(retry_after)},
            )
        response = Response(status=200, headers=headers)
        assert outcome.decision_id is not None
        response.plan = Plan(  # type: ignore[attr-defined]
            decision_id=outcome.decision_id,
            request_id=request_id,
            body=data,
            model=result.model,
            stream=bool(data.get("stream")),
            targets=_targets(result, key_envs),
        )
        return response


def _targets(result: RoutingResult, key_envs: Mapping[str, str]) -> list[Target]:
    """The upstreams to try in order: the decision's backend (or a queue's
    fallback), then the other non-loading candidates by score."""
    config = last_config_snapshot()
    by_name = {b.name: b for b in config.backends}
    scores: Mapping[str, float] = result.annotations.get("scores", {})
    first = result.backend_name
    if result.outcome is Outcome.QUEUE:
        first = result.fallback_backend
    ranked = sorted(
        (n for n in scores if n in by_name and n != first),
        key=lambda n: (-scores[n], by_name[n].priority, n),
    )
    targets = []
    for name in [first, *ranked]:
        backend = by_name.get(name) if name else None
        if backend is None or backend.health == Health.LOADING:
            continue
        targets.append(
            Target(
                backend=backend.name,
                base_url=backend.base_url,
                api_key_env=key_envs.get(backend.name, ""),
                half_open=backend.health_reason == HALF_OPEN,
            )
        )
    return targets


class ModelsView(APIView):
    """``GET /v1/models``: every model an enabled backend serves, and every alias."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [FastJSONRenderer]

    def get(self, request: Request) -> Response:
        config = config_snapshot()
        names = {m for b in config.backends if b.enabled for m in b.models}
        names |= set(config.aliases)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "nexus"}
            for name in sorted(names)
        ]
        return Response({"object": "list", "data": data})
