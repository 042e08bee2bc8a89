"""Pure scoring helpers: cost estimates and the smart strategy's factors.

Every factor is in [0, 1], higher is better:

- ``priority`` = 1 - priority / 100 (priority 0 is the most preferred);
- ``load`` = 1 - min(pending_requests / max_concurrency, 1);
- ``latency`` = 1000 / (1000 + latency_ema_ms); unknown latency = 0.5 (neutral,
  the value of a 1 s backend);
- ``errors`` = 1 - error_rate;
- ``cost`` = 1 - cost / most expensive candidate's cost (1 when all are free);
  only counted when the budget asks to prefer cheaper backends.

The smart score is the weighted mean of the counted factors, rounded to 6
places. Ties break on lower priority number, then on name (ascending).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from routing.pipeline.intent import Requirements, RoutingIntent
from routing.pipeline.types import BackendSnapshot, ModelOffer

LATENCY_REFERENCE_MS = 1000.0
NEUTRAL_LATENCY = 0.5


def estimate_cost(offer: ModelOffer, requirements: Requirements) -> float:
    """USD for the estimated input and output tokens at ``offer``'s prices."""
    return (
        requirements.estimated_input_tokens * offer.input_cost_per_1k
        + requirements.estimated_output_tokens * offer.output_cost_per_1k
    ) / 1000.0


class _Prices(NamedTuple):
    origin: Mapping[str, BackendSnapshot]
    offers: Mapping[str, ModelOffer]
    rows: tuple[tuple[str, float, float], ...] | None  # (name, in, out) per backend


def estimated_costs(intent: RoutingIntent) -> dict[str, float]:
    """``estimate_cost`` of every candidate (0.0 without an offer), by name, in
    candidate order.

    When the candidates are a memoised set (``intent.step_origin``), their
    prices come from a table memoised per (snapshot, set) instead of one offer
    lookup each; the arithmetic is the same.
    """
    offers = intent.offers
    req = intent.requirements
    tokens_in = req.estimated_input_tokens
    tokens_out = req.estimated_output_tokens
    origin = intent.step_origin
    if origin is not None and type(tokens_in) is int and type(tokens_out) is int:
        prices = intent.index.memo(
            ("prices", id(origin)), lambda: _prices(origin, offers)
        )
        if prices.origin is origin and prices.offers is offers and prices.rows:
            # float(int) is the conversion ``int * float`` makes (same value,
            # same OverflowError); float * float skips the mixed-type dispatch.
            fin, fout = float(tokens_in), float(tokens_out)
            return {n: (fin * i + fout * o) / 1000.0 for n, i, o in prices.rows}
    costs: dict[str, float] = {}
    for backend in intent.candidates.values():
        offer = offers.get(backend.name)
        # ``estimate_cost`` inlined (hot path; same arithmetic).
        costs[backend.name] = (
            (
                tokens_in * offer.input_cost_per_1k
                + tokens_out * offer.output_cost_per_1k
            )
            / 1000.0
            if offer is not None
            else 0.0
        )
    return costs


def _prices(
    origin: Mapping[str, BackendSnapshot], offers: Mapping[str, ModelOffer]
) -> _Prices:
    """The price rows of ``origin``'s backends; None unless every one has an offer
    with float prices under its own name (then the general path is exact)."""
    rows = []
    for name, backend in origin.items():
        offer = offers.get(name)
        if offer is None or backend.name != name:
            return _Prices(origin, offers, None)
        price_in, price_out = offer.input_cost_per_1k, offer.output_cost_per_1k
        if type(price_in) is not float or type(price_out) is not float:
            return _Prices(origin, offers, None)
        rows.append((name, price_in, price_out))
    return _Prices(origin, offers, tuple(rows))


def priority_factor(priority: int) -> float:
    """0-100 priority (lower preferred) as a 0-1 factor (higher better)."""
    return 1.0 - min(max(priority, 0), 100) / 100.0


def load_factor(pending_requests: int, max_concurrency: int) -> float:
    """Free share of the backend's concurrency."""
    return 1.0 - min(max(pending_requests, 0) / max(max_concurrency, 1), 1.0)


def latency_factor(latency_ema_ms: float | None) -> float:
    """Fast backends near 1, slow ones towards 0, unknown neutral (0.5)."""
    if latency_ema_ms is None:
        return NEUTRAL_LATENCY
    return LATENCY_REFERENCE_MS / (LATENCY_REFERENCE_MS + max(latency_ema_ms, 0.0))


def error_factor(error_rate: float) -> float:
    """Share of successful requests."""
    return 1.0 - min(max(error_rate, 0.0), 1.0)


def cost_factor(cost: float, max_cost: float) -> float:
    """Cheaper than the most expensive candidate -> closer to 1."""
    if max_cost <= 0.0:
        return 1.0
    return 1.0 - min(max(cost, 0.0) / max_cost, 1.0)


def smart_score(
    backend: BackendSnapshot,
    weights: Mapping[str, float],
    *,
    cost: float | None = None,
    max_cost: float = 0.0,
) -> tuple[float, dict[str, float]]:
    """The smart score of ``backend`` and its factor breakdown.

    ``cost`` None means the cost factor is not counted (no ``prefer_cheaper``).
    """
    breakdown = {
        "priority": priority_factor(backend.priority),
        "load": load_factor(backend.pending_requests, backend.max_concurrency),
        "latency": latency_factor(backend.latency_ema_ms),
        "errors": error_factor(backend.error_rate),
    }
    if cost is not None:
        breakdown["cost"] = cost_factor(cost, max_cost)
    total = 0.0
    weight_sum = 0.0
    for key, value in breakdown.items():
        weight = weights.get(key, 0.0)
        total += weight * value
        weight_sum += weight
    score = round(total / weight_sum, 6) if weight_sum > 0 else 0.0
    return score, breakdown


def rank_key(score: float, backend: BackendSnapshot) -> tuple[float, int, str]:
    """Sort key: best score first, then lower priority number, then name."""
    return (-score, backend.priority, backend.name)
