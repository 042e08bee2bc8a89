"""Budgets and the append-only usage ledger their spend is derived from."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from routing.models.validators import at_least, in_range, validate_slug_name
from routing.pipeline.budgets import budget_status, scope_governs
from routing.pipeline.periods import budget_period
from routing.pipeline.rules import ConfigRuleError, validate_model_pattern
from routing.pipeline.types import (
    EVERYTHING,
    BudgetScope,
    BudgetStatus,
    HardLimitAction,
)

MONEY = {"max_digits": 14, "decimal_places": 6}


#: The keys of a budget's ``scope``, in the order they are checked and shown.
SCOPE_FIELDS = ("clients", "models", "zones", "backends")


def default_alert_thresholds() -> list[int]:
    return [80, 100]


class Budget(models.Model):
    """A monthly spending limit over what its ``scope`` governs.

    Without a limit (``monthly_limit_usd`` empty) it only tracks spend: it books
    every usage it governs and never excludes. ``spent_usd`` and
    ``reserved_usd`` are cached totals of the current period's ledger entries,
    kept in step in the same transaction as each entry.
    """

    name = models.CharField(max_length=64, unique=True, validators=[validate_slug_name])
    monthly_limit_usd = models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        validators=at_least(0, "Monthly limit"),
        help_text="Empty: the budget only tracks spend and never excludes.",
    )
    soft_limit_percent = models.PositiveSmallIntegerField(
        default=75, validators=in_range(1, 100, "Soft limit percent")
    )
    hard_limit_action = models.CharField(
        max_length=16,
        choices=[(a.value, a.value) for a in HardLimitAction],
        default=HardLimitAction.BLOCK_CLOUD.value,
    )
    reset_day = models.PositiveSmallIntegerField(
        default=1, validators=in_range(1, 28, "Reset day")
    )
    scope = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'What it governs, e.g. {"zones": ["cloud"]} or {"clients": ["team-a-app"]}; '
            "keys clients, models (globs), zones, backends; empty: everything."
        ),
    )
    alert_thresholds = models.JSONField(
        default=default_alert_thresholds,
        blank=True,
        help_text="Percents of the limit at which an alert is sent, e.g. [80, 100].",
    )
    alert_webhook_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Alerts are POSTed here as JSON (empty: kept in the alert log only).",
    )
    period_start = models.DateField(null=True, blank=True, editable=False)
    period_end = models.DateField(null=True, blank=True, editable=False)
    spent_usd = models.DecimalField(**MONEY, default=Decimal(0), editable=False)
    reserved_usd = models.DecimalField(**MONEY, default=Decimal(0), editable=False)

    #: Kept by the ledger's reservations and settlements; a configuration save
    #: (admin, API) never writes them, so it cannot undo a concurrent reservation.
    MAINTAINED_FIELDS = ("spent_usd", "reserved_usd")

    AUDITED_FIELDS = (
        "name",
        "monthly_limit_usd",
        "soft_limit_percent",
        "hard_limit_action",
        "reset_day",
        "scope",
        "alert_thresholds",
        "alert_webhook_url",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(reset_day__gte=1, reset_day__lte=28),
                name="budget_reset_day_1_28",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    soft_limit_percent__gte=1, soft_limit_percent__lte=100
                ),
                name="budget_soft_limit_1_100",
            ),
            models.CheckConstraint(
                condition=models.Q(monthly_limit_usd__isnull=True)
                | models.Q(monthly_limit_usd__gte=0),
                name="budget_limit_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Check the scope and thresholds; set the period that contains today."""
        errors = {
            **_scope_errors(self.scope),
            **_threshold_errors(self.alert_thresholds),
        }
        if errors:
            raise ValidationError(errors)
        self.scope = {key: self.scope[key] for key in SCOPE_FIELDS if key in self.scope}
        self.alert_thresholds = sorted(set(self.alert_thresholds))
        if isinstance(self.reset_day, int) and 1 <= self.reset_day <= 28:
            self.period_start, self.period_end = budget_period(
                timezone.now().date(), self.reset_day
            )

    def scope_snapshot(self) -> BudgetScope:
        """The scope as the pipeline reads it (a valid, saved scope); parsed
        once per scope object (routing reuses the rows it read last)."""
        parsed = self.__dict__.get("_parsed_scope")
        if parsed is None or parsed[0] != self.scope:
            parsed = self.__dict__["_parsed_scope"] = (
                _copied(self.scope),
                scope_from_json(self.scope),
            )
        return parsed[1]

    def governs(self, *, client: str, model: str, backend: str, zone: str) -> bool:
        """Whether this budget governs ``client``'s request for the resolved
        ``model`` served by ``backend`` in ``zone``."""
        return scope_governs(
            self.scope_snapshot(),
            client=client,
            model=model,
            backend=backend,
            zone=zone,
        )

    def period_start_today(self):  # type: ignore[no-untyped-def]
        """Start of the period containing today (for budgets never saved by clean)."""
        return budget_period(timezone.now().date(), self.reset_day)[0]

    @property
    def enabled(self) -> bool:
        """Whether it has a limit (without one it only tracks spend)."""
        return self.monthly_limit_usd is not None

    @property
    def status(self) -> BudgetStatus:
        """Spent + reserved against the limit (normal while disabled), by the
        pipeline's rule (``routing.pipeline.budgets.budget_status``)."""
        return budget_status(
            self.spent_usd,
            self.reserved_usd,
            self.monthly_limit_usd,
            self.soft_limit_percent,
        )


def _copied(scope: object) -> object:
    """A copy of a scope object that a later in-place edit does not change."""
    if not isinstance(scope, dict):
        return scope
    return {k: list(v) if isinstance(v, list) else v for k, v in scope.items()}


def scope_from_json(scope: object) -> BudgetScope:
    """``BudgetScope`` of a stored scope object (empty or missing: everything)."""
    if not isinstance(scope, dict) or not any(
        scope.get(key) is not None for key in SCOPE_FIELDS
    ):
        return EVERYTHING

    def listed(key: str) -> list[str] | None:
        value = scope.get(key)
        return None if value is None else [str(item) for item in value]

    clients, models_, zones, backends = (listed(key) for key in SCOPE_FIELDS)
    return BudgetScope(
        clients=None if clients is None else frozenset(clients),
        models=None if models_ is None else tuple(models_),
        zones=None if zones is None else frozenset(zones),
        backends=None if backends is None else frozenset(backends),
    )


def _scope_errors(scope: object) -> dict[str, list[str]]:
    """Errors keyed ``scope`` or ``scope.<field>``; empty when the scope is valid."""
    from routing.models.config import Backend, PrivacyZone

    if scope is None:
        scope = {}
    if not isinstance(scope, dict):
        return {
            "scope": [
                "Scope must be an object with the keys " + ", ".join(SCOPE_FIELDS) + "."
            ]
        }
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(scope) - set(SCOPE_FIELDS))
    if unknown:
        errors["scope"] = [
            f"Unknown scope field(s) {', '.join(map(repr, unknown))}; use "
            + ", ".join(SCOPE_FIELDS)
            + "."
        ]
    for key in SCOPE_FIELDS:
        value = scope.get(key)
        if value is None:
            continue
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(item, str) and item.strip() for item in value)
        ):
            errors[f"scope.{key}"] = [
                f"Must be null (anything) or a non-empty list of names; got {value!r}."
            ]
            continue
        problems = _scope_value_problems(key, value, Backend, PrivacyZone)
        if problems:
            errors[f"scope.{key}"] = problems
    return errors


def _scope_value_problems(
    key: str, value: list[str], backend_model: type, zone_model: type
) -> list[str]:
    if key == "clients":
        long = [item for item in value if len(item) > 160]
        return (
            [f"Client names are at most 160 characters; got {long[0]!r}."]
            if long
            else []
        )
    if key == "models":
        problems = []
        for pattern in value:
            try:
                validate_model_pattern(pattern)
            except ConfigRuleError as exc:
                problems.append(str(exc))
        return problems
    table = zone_model if key == "zones" else backend_model
    known = set(table.objects.filter(name__in=value).values_list("name", flat=True))
    missing = [item for item in value if item not in known]
    if not missing:
        return []
    what = "zone" if key == "zones" else "backend"
    return [
        f"Unknown {what}(s) {', '.join(map(repr, missing))}; "
        f"create the {what} first or fix the name."
    ]


def _threshold_errors(thresholds: object) -> dict[str, list[str]]:
    if thresholds is None:
        thresholds = []
    if not isinstance(thresholds, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 1000
        for t in thresholds
    ):
        return {
            "alert_thresholds": [
                "Must be a list of whole percents of the limit between 1 and 1000, "
                f"e.g. [80, 100]; got {thresholds!r}."
            ]
        }
    return {}


class LedgerKind(models.TextChoices):
    RESERVE = "reserve", "reserve"
    RELEASE = "release", "release"
    SPEND = "spend", "spend"


class LedgerEntry(models.Model):
    """One append-only money movement on a budget.

    ``reserve`` holds a decision's estimate at decision time; ``release`` gives it
    back (negative amount) when usage is reported or the reservation expires;
    ``spend`` records real cost. At most one of each kind per (budget, decision),
    so a racing settle and expiry cannot release twice.

    Budget totals derive from the ledger: ``spent_usd`` = sum of ``spend`` entries
    whose ``period_start`` is the budget's current period; ``reserved_usd`` = sum
    of ``reserve`` + ``release`` entries over all periods (only open reservations
    are non-zero).
    """

    # Indexed by the (budget, period_start, kind) index below.
    budget = models.ForeignKey(
        Budget, on_delete=models.PROTECT, related_name="ledger", db_index=False
    )
    kind = models.CharField(max_length=8, choices=LedgerKind.choices)
    amount_usd = models.DecimalField(**MONEY)
    # Indexed by the unique (decision_id, budget, kind) below: every lookup by
    # decision uses it, and a decision's route writes one fewer index per budget.
    decision_id = models.UUIDField(null=True, blank=True)
    period_start = models.DateField()
    note = models.CharField(max_length=200, blank=True)
    #: When the money moved: now, except for spend counted later from usage
    #: recorded before (a recount), which keeps the usage's time.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["budget", "period_start", "kind"])]
        constraints = [
            models.UniqueConstraint(  # NULL decision ids never conflict
                fields=["decision_id", "budget", "kind"],
                name="ledger_one_kind_per_decision",
            )
        ]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_usd} on {self.budget_id}"


class UsageReport(models.Model):
    """What a routed request really used, reported once per decision."""

    decision_id = models.UUIDField(unique=True)
    input_tokens = models.PositiveIntegerField()
    output_tokens = models.PositiveIntegerField()
    cost_usd = models.DecimalField(**MONEY)
    # upstream: read from the proxied answer; estimated: counted from the
    # characters when the upstream sent none; reported: POST /api/v1/usage.
    source = models.CharField(
        max_length=16,
        choices=[(s, s) for s in ("upstream", "estimated", "reported")],
        default="reported",
    )
    latency_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Added to ``SpendDaily`` (by ``spend_rollup``, in the same transaction).
    # False on new instances (writers that insert every field's value) and a
    # database default (writers that insert without naming it).
    rolled_up = models.BooleanField(default=False, db_default=False, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The spend report's partial days at the edges of its window.
            models.Index(fields=["created_at"], name="usage_created_at"),
            # The rollup's queue and the report's tail: only the rows not yet
            # rolled up, so it stays small however long the ledger grows.
            models.Index(
                fields=["id"],
                condition=models.Q(rolled_up=False),
                name="usage_not_rolled_up",
            ),
        ]

    def __str__(self) -> str:
        return f"usage of {self.decision_id}"


class AlertStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"
    LOGGED = "logged", "logged (no webhook)"


class BudgetAlert(models.Model):
    """One threshold crossed by a budget in one period: at most one row per
    (budget, period, threshold), which is what makes delivery exactly once."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateField()
    period_end = models.DateField()
    threshold_percent = models.PositiveSmallIntegerField()
    spent_usd = models.DecimalField(**MONEY)
    reserved_usd = models.DecimalField(**MONEY)
    limit_usd = models.DecimalField(**MONEY)
    exhausted_on = models.DateField(null=True, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True)
    status = models.CharField(
        max_length=8, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold_percent"],
                name="budget_alert_once_per_period_threshold",
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget_id} at {self.threshold_percent}% ({self.period_start})"
