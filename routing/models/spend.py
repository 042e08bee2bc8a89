"""The daily spend rollup: recorded usage summed per (day, client, model, backend, zone)."""

from __future__ import annotations

from django.db import models

#: Sums of many ``MONEY`` amounts: room for 14 integer digits.
SUM_MONEY = {"max_digits": 20, "decimal_places": 6}


class SpendDaily(models.Model):
    """The usage reports rolled up so far, summed per UTC day and dimension.

    Written only by ``routing.services.spend_rollup.spend_rollup``, which marks
    each report it adds (``UsageReport.rolled_up``) in the same transaction, so
    a report is in here exactly once or not yet. ``client``, ``model`` and
    ``backend`` are the decision's, ``zone`` its backend's when rolled up
    (empty strings for unknown values).
    """

    day = models.DateField()
    client = models.CharField(max_length=160, blank=True)
    model = models.CharField(max_length=200, blank=True)
    backend = models.CharField(max_length=64, blank=True)
    zone = models.CharField(max_length=64, blank=True)
    cost_usd = models.DecimalField(**SUM_MONEY, default=0)
    requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    estimated_cost_usd = models.DecimalField(**SUM_MONEY, default=0)

    class Meta:
        ordering = ["day", "client", "model", "backend", "zone"]
        verbose_name_plural = "spend per day"
        constraints = [
            # Its index (day first) also serves the report's day-range scans.
            models.UniqueConstraint(
                fields=["day", "client", "model", "backend", "zone"],
                name="spend_daily_one_row_per_group",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.client} {self.model} {self.backend}: {self.cost_usd}"
