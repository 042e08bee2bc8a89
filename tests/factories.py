"""factory_boy factories for configuration rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import factory
from django.utils import timezone

from routing.models import (
    Alias,
    Backend,
    BackendModel,
    Budget,
    LedgerEntry,
    PrivacyZone,
    RoutingDecision,
    TrafficPolicy,
    UsageReport,
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


# --- Background work (budget ledger, recorded decisions) ---------------------


class LedgerEntryFactory(factory.django.DjangoModelFactory):
    """A ledger entry on the global budget, in its current period."""

    class Meta:
        model = LedgerEntry

    budget = factory.LazyFunction(global_budget)
    kind = "reserve"
    amount_usd = Decimal("0.50")
    decision_id = factory.LazyFunction(uuid.uuid4)
    period_start = factory.LazyAttribute(lambda entry: entry.budget.period_start)


class RoutingDecisionFactory(factory.django.DjangoModelFactory):
    """A recorded route decision, created now unless ``created_at`` is given."""

    class Meta:
        model = RoutingDecision

    request_id = factory.Sequence(lambda n: f"req-{n}")
    created_at = factory.LazyFunction(timezone.now)
    outcome = "route"
    requested_model = "llama3.1:8b"
    model = "llama3.1:8b"
    backend_name = "backend-0"


class UsageReportFactory(factory.django.DjangoModelFactory):
    """What a routed decision used, recorded at ``created_at`` (default now).

    The decision is made too (``decision__client=...``, ``decision__model=...``,
    ``decision__estimated_cost_usd=...``) unless ``decision`` is given.
    """

    class Meta:
        model = UsageReport

    class Params:
        decision = factory.SubFactory(
            RoutingDecisionFactory,
            client="team-a-app",
            estimated_cost_usd=Decimal("0.0100"),
            created_at=factory.SelfAttribute("..created_at"),
        )

    decision_id = factory.SelfAttribute("decision.id")
    input_tokens = 500
    output_tokens = 200
    cost_usd = Decimal("0.0120")
    source = "upstream"
    created_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class: type, *args: object, **kwargs: object) -> object:
        """``created_at`` is ``auto_now_add``: set the given time after the insert."""
        created_at = kwargs.pop("created_at")
        report = super()._create(model_class, *args, **kwargs)
        UsageReport.objects.filter(pk=report.pk).update(created_at=created_at)
        report.created_at = created_at
        return report


def proxy_attempts(*, served_ttft_ms: float) -> list[dict[str, object]]:
    """A proxied decision's attempts as recorded: a failover, then the answer."""
    return [
        {
            "backend": "cloud-llama",
            "outcome": "failed_over",
            "status": 503,
            "error": "HTTP 503",
            "duration_ms": 12.5,
            "ttft_ms": 10.25,
        },
        {
            "backend": "local-gpu",
            "outcome": "ok",
            "status": 200,
            "error": "",
            "duration_ms": 812.345,
            "ttft_ms": served_ttft_ms,
        },
    ]


def usage_recorded(
    *,
    at: datetime,
    client: str = "svc",
    model: str = "llama3.1:8b",
    backend: str = "local-gpu",
    cost: str = "0.010000",
    estimated: str | None = "0.012000",
    input_tokens: int = 100,
    output_tokens: int = 50,
) -> UsageReport:
    """A routed decision and its usage report, both recorded at ``at``."""
    decision = RoutingDecisionFactory(
        created_at=at,
        client=client,
        model=model,
        backend_name=backend,
        estimated_cost_usd=None if estimated is None else Decimal(estimated),
    )
    report = UsageReport.objects.create(
        decision_id=decision.pk,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=Decimal(cost),
    )
    UsageReport.objects.filter(pk=report.pk).update(created_at=at)  # auto_now_add
    report.created_at = at
    return report
