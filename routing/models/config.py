"""Configuration models: zones, backends and their models, aliases, fallbacks, policies.

Every change to these goes through ``routing.services.config`` so that it is
audited and bumps the config version.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models

from routing.models.validators import (
    at_least,
    in_range,
    validate_env_var_name,
    validate_model_name,
    validate_pattern,
    validate_privacy,
    validate_slug_name,
)
from routing.pipeline.rules import (
    MAX_ALIAS_HOPS,
    AliasError,
    parse_privacy,
    resolve_alias,
)
from routing.pipeline.types import BackendKind, Health, PrivacyLevel

MAX_FALLBACKS = 5


def validate_positive_cost(value: Decimal | None) -> None:
    """A cost cap must be above zero (leave it empty for no cap)."""
    if value is not None and value <= 0:
        raise ValidationError(
            "Max cost per request must be greater than 0 (leave empty for no cap).",
            code="not_positive",
        )


class PrivacyZone(models.Model):
    """Where a backend runs; ``private`` zones may receive restricted traffic."""

    name = models.CharField(max_length=64, unique=True, validators=[validate_slug_name])
    private = models.BooleanField(default=False)
    description = models.CharField(max_length=200, blank=True)

    AUDITED_FIELDS = ("name", "private", "description")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Backend(models.Model):
    """An inference endpoint: its zone, tier and priority, plus probed runtime state."""

    name = models.CharField(max_length=64, unique=True, validators=[validate_slug_name])
    kind = models.CharField(
        max_length=16, choices=[(k.value, k.value) for k in BackendKind]
    )
    base_url = models.URLField(max_length=300)
    privacy_zone = models.ForeignKey(
        PrivacyZone,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="backends",
        help_text="Empty means not private: restricted traffic never goes here.",
    )
    capability_tier = models.PositiveSmallIntegerField(
        default=1, validators=in_range(1, 5, "Capability tier")
    )
    priority = models.PositiveSmallIntegerField(
        default=50,
        validators=in_range(0, 100, "Priority"),
        help_text="0-100; lower is preferred.",
    )
    enabled = models.BooleanField(default=True)
    api_key_env = models.CharField(
        max_length=128,
        blank=True,
        validators=[validate_env_var_name],
        help_text="Name of the environment variable holding the upstream API key "
        "(e.g. OPENAI_API_KEY); the key itself is never stored.",
    )
    max_concurrency = models.PositiveIntegerField(
        default=4, validators=at_least(1, "Max concurrency")
    )
    # Runtime state, written by health probes (not audited, no config bump).
    health = models.CharField(
        max_length=16,
        choices=[(h.value, h.value) for h in Health],
        default=Health.UNKNOWN.value,
    )
    loading_eta_ms = models.PositiveIntegerField(null=True, blank=True)
    pending_requests = models.PositiveIntegerField(default=0)
    latency_ema_ms = models.FloatField(null=True, blank=True)
    error_rate = models.FloatField(default=0.0)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Passive health (the proxy): why it is unhealthy when not a failed probe,
    # and until when (an open circuit, an upstream's 429 Retry-After).
    health_reason = models.CharField(max_length=200, blank=True)
    unhealthy_until = models.DateTimeField(null=True, blank=True)
    last_probe_at = models.DateTimeField(null=True, blank=True)

    AUDITED_FIELDS = (
        "name",
        "kind",
        "base_url",
        "privacy_zone",
        "capability_tier",
        "priority",
        "enabled",
        "max_concurrency",
        "api_key_env",
    )
    #: What the ``operate_backend`` permission (the ``operators`` group) may
    #: change: where traffic may go, not what the backend is.
    OPERATOR_FIELDS = ("privacy_zone", "capability_tier", "priority", "enabled")

    class Meta:
        ordering = ["priority", "name"]
        permissions = [
            (
                "operate_backend",
                "Can change a backend's zone, tier, priority and enabled flag",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(capability_tier__gte=1, capability_tier__lte=5),
                name="backend_tier_1_5",
            ),
            models.CheckConstraint(
                condition=models.Q(priority__gte=0, priority__lte=100),
                name="backend_priority_0_100",
            ),
            models.CheckConstraint(
                condition=models.Q(error_rate__gte=0, error_rate__lte=1),
                name="backend_error_rate_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BackendModel(models.Model):
    """A model served by a backend, with its capabilities and prices (USD per 1k)."""

    backend = models.ForeignKey(
        Backend, on_delete=models.CASCADE, related_name="models"
    )
    name = models.CharField(max_length=200, validators=[validate_model_name])
    context_window = models.PositiveIntegerField(
        default=8192, validators=at_least(1, "Context window")
    )
    vision = models.BooleanField(default=False)
    tools = models.BooleanField(default=False)
    json_mode = models.BooleanField(default=False)
    input_cost_per_1k = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal(0),
        validators=at_least(0, "Input cost per 1k tokens"),
    )
    output_cost_per_1k = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal(0),
        validators=at_least(0, "Output cost per 1k tokens"),
    )

    AUDITED_FIELDS = (
        "name",
        "context_window",
        "vision",
        "tools",
        "json_mode",
        "input_cost_per_1k",
        "output_cost_per_1k",
    )

    class Meta:
        ordering = ["backend__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["backend", "name"],
                name="backend_model_unique",
                violation_error_message="This backend already serves a model "
                "with this name.",
            ),
            models.CheckConstraint(
                condition=models.Q(input_cost_per_1k__gte=0, output_cost_per_1k__gte=0),
                name="backend_model_costs_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.backend.name}/{self.name}" if self.backend_id else self.name


class Alias(models.Model):
    """A name that resolves to a model or another alias (at most 3 hops, no cycles)."""

    name = models.CharField(
        max_length=200, unique=True, validators=[validate_model_name]
    )
    target = models.CharField(max_length=200, validators=[validate_model_name])

    AUDITED_FIELDS = ("name", "target")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return f"{self.name} -> {self.target}"

    def clean(self) -> None:
        """Refuse a save that would create a cycle or a chain over 3 hops."""
        if not self.name or not self.target:
            return
        if self.name == self.target:
            raise ValidationError({"target": "An alias cannot point to itself."})
        others = Alias.objects.exclude(pk=self.pk).values_list("name", "target")
        mapping = dict(others)
        mapping[self.name] = self.target
        for start in mapping:
            try:
                resolve_alias(mapping, start)
            except AliasError as exc:
                raise ValidationError(
                    {"target": f"{exc} (at most {MAX_ALIAS_HOPS} hops)."}
                ) from None


def validate_fallback_list(value: object) -> None:
    """A list of 1-5 distinct model names."""
    if not isinstance(value, list) or not value:
        raise ValidationError("Fallbacks must be a non-empty list of model names.")
    if len(value) > MAX_FALLBACKS:
        raise ValidationError(
            f"At most {MAX_FALLBACKS} fallback models; got {len(value)}."
        )
    for item in value:
        if not isinstance(item, str):
            raise ValidationError(f"Each fallback must be a model name; got {item!r}.")
        validate_model_name(item)
    if len(set(value)) != len(value):
        raise ValidationError("Fallback models must not repeat.")


class FallbackChain(models.Model):
    """Models tried in order when routing ``model`` ends in a reject."""

    model = models.CharField(
        max_length=200, unique=True, validators=[validate_model_name]
    )
    fallbacks = models.JSONField(validators=[validate_fallback_list])

    AUDITED_FIELDS = ("model", "fallbacks")

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return f"{self.model} -> {', '.join(self.fallbacks or [])}"

    def clean(self) -> None:
        """A model cannot fall back to itself."""
        if isinstance(self.fallbacks, list) and self.model in self.fallbacks:
            raise ValidationError({"fallbacks": "A model cannot be its own fallback."})


class TrafficPolicy(models.Model):
    """Constraints applied to requests whose model matches ``model_pattern``.

    Policies are tried by ``order`` (then name); the first match wins. A policy
    matches the requested name, any alias hop, or the resolved model.
    """

    name = models.CharField(max_length=64, unique=True, validators=[validate_slug_name])
    model_pattern = models.CharField(max_length=200, validators=[validate_pattern])
    order = models.IntegerField(default=100, help_text="Lower is tried first.")
    privacy = models.CharField(
        max_length=80,
        default=PrivacyLevel.UNRESTRICTED.value,
        validators=[validate_privacy],
        help_text="unrestricted, restricted, or zone:<zone name>",
    )
    min_tier = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=in_range(1, 5, "Minimum tier")
    )
    fallback_allowed = models.BooleanField(
        default=True,
        help_text="Off: no flexible tier downgrade and no fallback models.",
    )
    max_cost_per_request_usd = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[validate_positive_cost],
    )
    description = models.CharField(max_length=200, blank=True)

    AUDITED_FIELDS = (
        "name",
        "model_pattern",
        "order",
        "privacy",
        "min_tier",
        "fallback_allowed",
        "max_cost_per_request_usd",
    )

    class Meta:
        ordering = ["order", "name"]
        verbose_name_plural = "traffic policies"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Normalise privacy and make sure a named zone exists."""
        try:
            constraint = parse_privacy(self.privacy)
        except ValueError:
            return  # the field validator reports it
        self.privacy = str(constraint)
        if (
            constraint.level is PrivacyLevel.ZONE
            and not PrivacyZone.objects.filter(name=constraint.zone).exists()
        ):
            raise ValidationError(
                {"privacy": f"Privacy zone {constraint.zone!r} does not exist."}
            )
