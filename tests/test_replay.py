"""``routing.replay``: rows read into requests, recorded choices replayed, worlds
that cross a process boundary (pure: no database)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

from routing.pipeline.types import (
    BackendSnapshot,
    ConfigSnapshot,
    ModelOffer,
    PrivacyLevel,
    Strategy,
    TierMode,
)
from routing.replay import (
    DecisionRow,
    PipelineSpec,
    Replayer,
    dump_world,
    replay_input,
)

COMBINED = {
    "privacy": {"value": "restricted", "sources": ["header", "policy:p"]},
    "min_tier": {"value": 3, "sources": ["policy:p"]},
    "tier_mode": {"value": "strict", "sources": ["default"]},
    "max_cost_usd": {"value": 0.5, "sources": ["body"]},
}
REQUIREMENTS = {
    "vision": False,
    "tools": True,
    "json_mode": False,
    "estimated_input_tokens": 120,
    "estimated_output_tokens": 64,
}


def row(**fields: object) -> DecisionRow:
    values: dict[str, object] = {
        "requested_model": "m",
        "client": "app",
        "outcome": "route",
        "backend": "b",
        "model": "m",
        "estimated_cost_usd": 0.0,
        "requirements": json.dumps(REQUIREMENTS),
        "constraints": json.dumps(COMBINED),
        "strategy": "smart",
        "turn": None,
        "backend_tier": 1,
        "request_constraints": None,
    }
    values.update(fields)
    return DecisionRow(**values)  # type: ignore[arg-type]


def test_a_row_without_request_constraints_restates_the_request_stated_parts() -> None:
    replayed = replay_input(row())
    request = replayed.request
    assert replayed.approximate
    assert request.privacy is not None
    assert request.privacy.level is PrivacyLevel.RESTRICTED
    assert request.sources["privacy"] == "header"
    assert request.min_tier is None  # stated by a policy only
    assert request.max_cost_usd == 0.5
    assert request.client == "app"
    assert request.body["tools"]
    assert request.body["max_tokens"] == 64


def test_recorded_request_constraints_are_replayed_as_stated() -> None:
    own = {"min_tier": 2, "tier_mode": "flexible", "sources": {"min_tier": "body"}}
    replayed = replay_input(row(request_constraints=json.dumps(own)))
    assert not replayed.approximate
    assert replayed.request.privacy is None
    assert replayed.request.min_tier == 2
    assert replayed.request.tier_mode is TierMode.FLEXIBLE
    assert replayed.request.sources == {"min_tier": "body"}


def plain(**fields: object) -> DecisionRow:
    """A row whose request stated no constraint."""
    return row(constraints="{}", **fields)


def fleet(*names: str) -> ConfigSnapshot:
    offer = MappingProxyType({"m": ModelOffer(name="m", tools=True)})
    return ConfigSnapshot(
        version=1,
        backends=tuple(BackendSnapshot(name=n, models=offer) for n in names),
    )


def test_round_robin_and_random_replay_the_recorded_backend_while_it_is_a_candidate() -> (
    None
):
    replayer = Replayer(fleet("a", "b", "c"), (), PipelineSpec())
    for strategy in (Strategy.ROUND_ROBIN, Strategy.RANDOM):
        for chosen in ("a", "b", "c"):
            verdict = replayer.replay(
                plain(strategy=strategy.value, backend=chosen, turn=7)
            )
            assert not verdict.changed, (strategy, chosen)


def test_round_robin_takes_the_recorded_turn_when_the_backend_is_gone() -> None:
    replayer = Replayer(fleet("a", "b", "c"), (), PipelineSpec())
    verdict = replayer.replay(plain(strategy="round_robin", backend="gone", turn=4))
    assert verdict.after_backend == "b"  # turn 4 over (a, b, c)
    again = replayer.replay(plain(strategy="random", backend="gone"))
    assert (
        again.after_backend
        == replayer.replay(plain(strategy="random", backend="gone")).after_backend
    )


def test_a_world_survives_the_trip_to_a_worker_process() -> None:
    config = fleet("a", "b")
    config, budgets, spec = pickle.loads(dump_world(config, (), PipelineSpec()))
    assert isinstance(config.backends[0].models, MappingProxyType)
    verdict = Replayer(config, budgets, spec).replay(plain(backend="a"))
    assert verdict.after_backend == "a"


def test_the_worker_side_imports_no_django() -> None:
    """Worker processes start from ``routing.replay`` alone: no settings, no database."""
    code = (
        "import sys; from routing.replay import serve; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
