"""Budgets and the append-only usage ledger their spend is derived from."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from routing.models.validators import at_least, in_range, validate_slug_name
from routing.pipeline.budgets import budget_status
from routing.pipeline.periods import budget_period
from routing.pipeline.types import BudgetStatus, HardLimitAction

MONEY = {"max_digits": 14, "decimal_places": 6}


class Budget(models.Model):
    """A monthly spending limit; disabled while ``monthly_limit_usd`` is empty.

    ``spent_usd`` and ``reserved_usd`` are cached totals of the current period's
    ledger entries, kept in step in the same transaction as each entry.
    """

    name = models.CharField(max_length=64, unique=True, validators=[validate_slug_name])
    monthly_limit_usd = models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        validators=at_least(0, "Monthly limit"),
        help_text="Empty disables the budget.",
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
        """Set the period that contains today from ``reset_day``."""
        if isinstance(self.reset_day, int) and 1 <= self.reset_day <= 28:
            self.period_start, self.period_end = budget_period(
                timezone.now().date(), self.reset_day
            )

    def period_start_today(self):  # type: ignore[no-untyped-def]
        """Start of the period containing today (for budgets never saved by clean)."""
        return budget_period(timezone.now().date(), self.reset_day)[0]

    @property
    def enabled(self) -> bool:
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

    budget = models.ForeignKey(Budget, on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(max_length=8, choices=LedgerKind.choices)
    amount_usd = models.DecimalField(**MONEY)
    decision_id = models.UUIDField(null=True, blank=True, db_index=True)
    period_start = models.DateField()
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["budget", "period_start", "kind"])]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "decision_id", "kind"],
                condition=models.Q(decision_id__isnull=False),
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

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"usage of {self.decision_id}"
