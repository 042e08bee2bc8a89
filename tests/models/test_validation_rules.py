"""Every model-layer rule refuses a bad value with a message that says what to fix."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Budget,
    FallbackChain,
    PrivacyZone,
    TrafficPolicy,
)
from tests.factories import AliasFactory, BackendFactory, local_zone

pytestmark = pytest.mark.django_db


def errors_of(instance: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    return caught.value.message_dict


def backend(**overrides: Any) -> Backend:
    values: dict[str, Any] = {
        "name": "gpu-box",
        "kind": "vllm",
        "base_url": "http://127.0.0.1:8001",
        "privacy_zone": local_zone(),
    }
    values.update(overrides)
    return Backend(**values)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "GPU Box", "Name must be 1-64 lower-case letters, digits or hyphens"),
        ("name", "-gpu", "starting and ending with a letter or digit"),
        ("capability_tier", 0, "Capability tier must be between 1 and 5."),
        ("capability_tier", 6, "Capability tier must be between 1 and 5."),
        ("priority", 101, "Priority must be between 0 and 100."),
        ("max_concurrency", 0, "Max concurrency must be 1 or more."),
        ("kind", "tgi", "Value 'tgi' is not a valid choice."),
        ("base_url", "not a url", "Enter a valid URL."),
    ],
)
def test_backend_refuses_bad_values_naming_the_field(
    field: str, value: Any, message: str
) -> None:
    errors = errors_of(backend(**{field: value}))
    assert any(message in text for text in errors[field]), errors


def test_backend_with_valid_values_passes() -> None:
    backend(capability_tier=5, priority=0).full_clean()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "input_cost_per_1k",
            Decimal("-0.01"),
            "Input cost per 1k tokens must be 0 or more.",
        ),
        (
            "output_cost_per_1k",
            Decimal("-1"),
            "Output cost per 1k tokens must be 0 or more.",
        ),
        ("context_window", 0, "Context window must be 1 or more."),
        ("name", "llama*", "Model name must not contain wildcards"),
        ("name", "bad name", "Model pattern must be 1-200 characters"),
    ],
)
def test_backend_model_refuses_bad_values(field: str, value: Any, message: str) -> None:
    offer = BackendModel(backend=BackendFactory(), name="llama3.1:8b")
    setattr(offer, field, value)
    errors = errors_of(offer)
    assert any(message in text for text in errors[field]), errors


def test_a_backend_cannot_list_the_same_model_twice() -> None:
    box = BackendFactory()
    BackendModel.objects.create(backend=box, name="llama3.1:8b")
    errors = errors_of(BackendModel(backend=box, name="llama3.1:8b"))
    assert "This backend already serves a model with this name." in str(errors)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "model_pattern",
            "gpt-[45]",
            "wildcards '*' (any run) and '?' (one character)",
        ),
        ("model_pattern", "", "This field cannot be blank."),
        (
            "privacy",
            "secret",
            "Privacy must be 'unrestricted', 'restricted' or 'zone:<zone",
        ),
        ("privacy", "zone:Not A Slug", "Privacy must be"),
        ("min_tier", 7, "Minimum tier must be between 1 and 5."),
        ("max_cost_per_request_usd", Decimal("0"), "must be greater than 0"),
        ("name", "Bad_Name", "Name must be 1-64 lower-case letters"),
    ],
)
def test_policy_refuses_bad_values(field: str, value: Any, message: str) -> None:
    policy = TrafficPolicy(name="p", model_pattern="gpt-*")
    setattr(policy, field, value)
    errors = errors_of(policy)
    assert any(message in text for text in errors[field]), errors


def test_policy_naming_a_zone_that_does_not_exist_is_refused() -> None:
    errors = errors_of(TrafficPolicy(name="p", model_pattern="*", privacy="zone:mars"))
    assert errors["privacy"] == ["Privacy zone 'mars' does not exist."]


def test_policy_privacy_is_normalised_to_lower_case() -> None:
    PrivacyZone.objects.create(name="eu-private", private=True)
    policy = TrafficPolicy(name="p", model_pattern="*", privacy=" Zone:EU-Private ")
    policy.full_clean()
    assert policy.privacy == "zone:eu-private"


def test_glob_patterns_with_star_and_question_mark_are_accepted() -> None:
    TrafficPolicy(
        name="p", model_pattern="llama3.?:*", privacy="restricted"
    ).full_clean()


def test_alias_pointing_to_itself_is_refused() -> None:
    errors = errors_of(Alias(name="fast", target="fast"))
    assert errors["target"] == ["An alias cannot point to itself."]


def test_alias_cycle_is_refused_with_the_chain_named() -> None:
    AliasFactory(name="a", target="b")
    errors = errors_of(Alias(name="b", target="a"))
    assert "Alias cycle: a -> b -> a" in errors["target"][0]


def test_alias_chain_of_three_hops_is_accepted_and_four_is_refused() -> None:
    AliasFactory(name="a", target="b")
    AliasFactory(name="b", target="c")
    Alias(name="c", target="model-x").full_clean()
    AliasFactory(name="c", target="d")
    errors = errors_of(Alias(name="d", target="model-x"))
    assert "longer than 3 hops" in errors["target"][0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "This field cannot be blank."),
        ("gpt-4o", "Fallbacks must be a non-empty list of model names."),
        (["a", "a"], "Fallback models must not repeat."),
        (["a", "b", "c", "d", "e", "f"], "At most 5 fallback models; got 6."),
        ([3], "Each fallback must be a model name; got 3."),
    ],
)
def test_fallback_chain_refuses_bad_lists(value: Any, message: str) -> None:
    errors = errors_of(FallbackChain(model="gpt-4o", fallbacks=value))
    assert message in errors["fallbacks"]


def test_model_cannot_fall_back_to_itself() -> None:
    errors = errors_of(FallbackChain(model="gpt-4o", fallbacks=["gpt-4o"]))
    assert errors["fallbacks"] == ["A model cannot be its own fallback."]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("reset_day", 29, "Reset day must be between 1 and 28."),
        ("reset_day", 0, "Reset day must be between 1 and 28."),
        ("soft_limit_percent", 0, "Soft limit percent must be between 1 and 100."),
        ("soft_limit_percent", 101, "Soft limit percent must be between 1 and 100."),
        ("monthly_limit_usd", Decimal("-5"), "Monthly limit must be 0 or more."),
        ("hard_limit_action", "panic", "Value 'panic' is not a valid choice."),
    ],
)
def test_budget_refuses_bad_values(field: str, value: Any, message: str) -> None:
    budget = Budget(name="team-a")
    setattr(budget, field, value)
    errors = errors_of(budget)
    assert message in errors[field]


def test_zone_name_must_be_a_slug() -> None:
    errors = errors_of(PrivacyZone(name="EU Private"))
    assert "Name must be 1-64 lower-case letters" in errors["name"][0]
