"""A backend scorer must define its factor: a subclass without one cannot be made."""

from __future__ import annotations

import pytest

from routing.pipeline import BackendScorer
from routing.pipeline.types import BackendSnapshot


def test_a_backend_scorer_without_a_factor_cannot_be_instantiated() -> None:
    class Unfinished(BackendScorer):
        name = "unfinished"

    with pytest.raises(TypeError, match="factor"):
        Unfinished()  # type: ignore[abstract]


def test_a_backend_scorer_with_a_factor_scores_each_backend() -> None:
    class Half(BackendScorer):
        name = "half"

        def factor(self, backend: BackendSnapshot) -> float:
            return 0.5

    assert Half().factor(BackendSnapshot(name="b")) == 0.5
