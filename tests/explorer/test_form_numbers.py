"""Explorer forms take numbers in plain decimal notation only."""

from __future__ import annotations

import pytest

from routing.explorer.forms import AuditFilterForm, BackendEditForm, SimulateForm

pytestmark = pytest.mark.django_db

SIMULATION = {"model": "llama3.1:8b", "input_tokens": "500", "output_tokens": "256"}


@pytest.mark.parametrize("raw", ["1_0", "1e1", "inf", "nan", "\u0661"])
def test_a_simulated_cost_cap_must_be_a_plain_decimal_number(raw: str) -> None:
    form = SimulateForm(data={**SIMULATION, "max_cost_usd": raw})
    assert not form.is_valid()
    assert "max_cost_usd" in form.errors


@pytest.mark.parametrize(
    ("form_class", "data", "field"),
    [
        (SimulateForm, {**SIMULATION, "input_tokens": "5_00"}, "input_tokens"),
        (AuditFilterForm, {"version": "1_0"}, "version"),
        (BackendEditForm, {"capability_tier": "3", "priority": "1_0"}, "priority"),
    ],
)
def test_a_whole_number_field_refuses_underscores(
    form_class: type, data: dict[str, str], field: str
) -> None:
    form = form_class(data=data)
    assert not form.is_valid()
    assert field in form.errors


def test_plain_numbers_are_accepted() -> None:
    form = SimulateForm(data={**SIMULATION, "max_cost_usd": " 0.05 ", "min_tier": "3"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["max_cost_usd"] == 0.05
    assert form.cleaned_data["input_tokens"] == 500
