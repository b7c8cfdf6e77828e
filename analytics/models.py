"""Analytics read models: rollups projected from the payments event log.

Every table here is derived data. `analytics.services` keeps them up to date
from committed, published events (the projector, exactly once per event,
with its `Checkpoint` advanced in the same transaction as the rows), rebuilds
them from scratch with set-based SQL, and `manage.py verify` checks them
against the event log and the payment tables (analytics.checks).

A rollup row is one (grain, bucket) x dimensions cell with additive
measures, so any coarser question is a SUM over cells:

- `Rollup` — the full cube: merchant x processor x currency x method x
  brand x outcome x decline code, with counts, amounts and a latency
  histogram. Minute, hour and day grains (day derived from hour on rebuild).
- `SeriesRollup` — the same facts without method, brand and decline code: what
  the time series, KPIs and per-processor charts read. Ten times fewer rows
  than `Rollup`, which is what keeps a 90-day chart cheap at 10 M payments.
- `BinRollup` — approvals per card BIN and brand (hour, day).
- `CustomerRollup` — succeeded volume per customer per day (top customers).
- `StatusRollup` — payments by current status, bucketed by their creation
  time: each transition moves one count from its old status to its new.

Buckets are Unix seconds (UTC) aligned to the grain, so the bucket
arithmetic is the same integer division on PostgreSQL, SQLite and Python.
"""

from __future__ import annotations

from django.db import models

from accounts.models import Merchant


class Grain(models.IntegerChoices):
    MINUTE = 60
    HOUR = 3600
    DAY = 86400


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded"  # an approved charge (captured now or authorised)
    FAILED = "failed"  # a declined charge, `code` = the decline code
    REFUNDED = "refunded"  # a refund created (money back to the customer)
    REFUND_FAILED = "refund_failed"  # a pending refund that failed (money back to the merchant)
    DISPUTED = "disputed"  # a dispute opened


# Upper bounds (ms, exclusive) of the latency histogram buckets h0…h11; the
# last one is open-ended.
LATENCY_BOUNDS_MS: tuple[int, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
HISTOGRAM = tuple(f"h{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1))


class _Cell(models.Model):
    grain = models.IntegerField(choices=Grain.choices)
    bucket = models.BigIntegerField()  # Unix seconds of the bucket start
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+")
    count = models.BigIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.grain}s@{self.bucket} merchant {self.merchant_id}"


class _Measured(_Cell):
    amount = models.BigIntegerField(default=0)  # minor units of `currency`

    class Meta:
        abstract = True


class _Timed(_Measured):
    """Charge counts by latency of the deciding processor attempt."""

    h0 = models.BigIntegerField(default=0)
    h1 = models.BigIntegerField(default=0)
    h2 = models.BigIntegerField(default=0)
    h3 = models.BigIntegerField(default=0)
    h4 = models.BigIntegerField(default=0)
    h5 = models.BigIntegerField(default=0)
    h6 = models.BigIntegerField(default=0)
    h7 = models.BigIntegerField(default=0)
    h8 = models.BigIntegerField(default=0)
    h9 = models.BigIntegerField(default=0)
    h10 = models.BigIntegerField(default=0)
    h11 = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class Rollup(_Timed):
    processor = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    method = models.CharField(max_length=16)
    brand = models.CharField(max_length=20)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    code = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "grain",
                    "bucket",
                    "merchant",
                    "processor",
                    "currency",
                    "method",
                    "brand",
                    "outcome",
                    "code",
                ],
                name="rollup_cell",
            )
        ]
        indexes = [models.Index(fields=["merchant", "grain", "bucket"], name="rollup_merchant")]


class SeriesRollup(_Timed):
    processor = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "bucket", "merchant", "processor", "currency", "outcome"],
                name="series_rollup_cell",
            )
        ]
        indexes = [
            models.Index(fields=["merchant", "grain", "bucket"], name="series_rollup_merchant")
        ]


class BinRollup(_Cell):
    brand = models.CharField(max_length=20)
    bin = models.CharField(max_length=6)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "bucket", "merchant", "brand", "bin", "outcome"],
                name="bin_rollup_cell",
            )
        ]
        indexes = [models.Index(fields=["merchant", "grain", "bucket"], name="bin_rollup_merchant")]


class CustomerRollup(_Measured):
    currency = models.CharField(max_length=3)
    customer_id = models.CharField(max_length=40)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "bucket", "merchant", "currency", "customer_id"],
                name="customer_rollup_cell",
            )
        ]
        indexes = [
            models.Index(fields=["merchant", "grain", "bucket"], name="customer_rollup_merchant"),
            # Top customers read each day's biggest cells first (selectors.top_customers).
            models.Index(
                fields=["grain", "bucket", "currency", "-amount"], name="customer_rollup_top"
            ),
            models.Index(
                fields=["grain", "bucket", "currency", "merchant", "-amount"],
                name="customer_rollup_top_merchant",
            ),
        ]


class StatusRollup(_Cell):
    status = models.CharField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "bucket", "merchant", "status"], name="status_rollup_cell"
            )
        ]
        indexes = [
            models.Index(fields=["merchant", "grain", "bucket"], name="status_rollup_merchant")
        ]


class Checkpoint(models.Model):
    """How far a projector has read the published event log: the outbox
    `position` of the last event it counted. Advanced in the transaction
    that writes the rollup rows, so each event is counted exactly once."""

    name = models.CharField(primary_key=True, max_length=32)
    position = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"
