"""factory_boy factories for configuration rows."""

from __future__ import annotations

from decimal import Decimal

import factory

from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Budget,
    PrivacyZone,
    TrafficPolicy,
)


class PrivacyZoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PrivacyZone
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"zone-{n}")
    private = True


def local_zone() -> PrivacyZone:
    return PrivacyZone.objects.get(name="local")


def cloud_zone() -> PrivacyZone:
    return PrivacyZone.objects.get(name="cloud")


class BackendFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Backend

    name = factory.Sequence(lambda n: f"backend-{n}")
    kind = "ollama"
    base_url = factory.Sequence(lambda n: f"http://127.0.0.1:{19000 + n}")
    privacy_zone = factory.LazyFunction(local_zone)
    capability_tier = 2
    priority = 50


class BackendModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BackendModel

    backend = factory.SubFactory(BackendFactory)
    name = "llama3.1:8b"
    context_window = 8192
    input_cost_per_1k = Decimal(0)
    output_cost_per_1k = Decimal(0)


class AliasFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alias

    name = factory.Sequence(lambda n: f"alias-{n}")
    target = "llama3.1:8b"


class TrafficPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrafficPolicy

    name = factory.Sequence(lambda n: f"policy-{n}")
    model_pattern = "*"
    privacy = "unrestricted"


def global_budget() -> Budget:
    return Budget.objects.get(name="global")
