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
  the time series, KPIs and per-processor charts read.
- `ReasonRollup` — declines by decline code (the failure-reason chart).
- `BrandRollup` — approvals and declines by method and brand (the mix).
- `BinRollup` — approvals per card BIN and brand (hour, day).
- `CustomerRollup` — succeeded volume per customer per day and per week.
- `TopCustomerRollup` — each day's and week's biggest `TOP_PER_DAY` customer
  cells (per merchant and over all merchants): what the top-customers chart
  reads (whole weeks of a long window, days at its edges).
- `StatusRollup` — payments by current status, bucketed by their creation
  time: each transition moves one count from its old status to its new.

Every table but `Rollup` and `CustomerRollup` also holds **total members**
(an OLAP cube's "ALL"): `merchant` NULL is the cell summed over every
merchant, processor `*` (and currency `*` where the table has one as a
filter only) summed over every processor (currency). A chart then reads
exactly the cells of its filter — an unfiltered 90-day failure-reason chart
reads 90 days x 8 codes, not x merchants x processors x currencies — so its
cost depends neither on payments nor on how many merchants there are. The
total cells are written by the same projector transaction and rebuild as the
others (analytics.services.Cube.totals) and checked by verify.

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
    WEEK = 604800  # customers only; Unix-aligned weeks (they start on Thursday, UTC)


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


# The total member of a text dimension ("every processor", "every currency").
ALL = "*"


class _Cell(models.Model):
    grain = models.IntegerField(choices=Grain.choices)
    bucket = models.BigIntegerField()  # Unix seconds of the bucket start
    count = models.BigIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        merchant = getattr(self, "merchant_id", None) or "all"
        return f"{type(self).__name__} {self.grain}s@{self.bucket} merchant {merchant}"


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
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+")
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


def _all_merchants() -> models.ForeignKey[Merchant | None, Merchant | None]:
    """The merchant of a table with total members: NULL is every merchant."""
    return models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+", null=True)


def _cells(name: str, dims: list[str]) -> list[models.BaseConstraint]:
    """One cell per key. NULLs never conflict in a unique index, so the
    every-merchant cells (merchant NULL) have their own partial one: the
    upsert names it in `ON CONFLICT (…) WHERE merchant_id IS NULL`."""
    return [
        models.UniqueConstraint(fields=["grain", "bucket", "merchant", *dims], name=f"{name}_cell"),
        models.UniqueConstraint(
            fields=["grain", "bucket", *dims],
            condition=models.Q(merchant__isnull=True),
            name=f"{name}_all",
        ),
    ]


def _read_index(name: str, fields: list[str]) -> models.Index:
    """What a chart reads: its filter's cells over a range of buckets. The
    (merchant, processor, …) prefix is an equality for every scope (NULL and
    `*` being the totals), so the index hands over exactly those cells;
    small tables list their measures too, for index-only scans."""
    return models.Index(fields=fields, name=f"{name}_read")


class SeriesRollup(_Timed):
    merchant = _all_merchants()
    processor = models.CharField(max_length=64)  # or ALL
    currency = models.CharField(max_length=3)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)

    class Meta:
        constraints = _cells("series_rollup", ["processor", "currency", "outcome"])
        indexes = [
            _read_index("series_rollup", ["merchant", "processor", "grain", "bucket", "currency"])
        ]


class ReasonRollup(_Cell):
    """Declined charges by decline code (outcome `failed` only)."""

    merchant = _all_merchants()
    processor = models.CharField(max_length=64)  # or ALL
    currency = models.CharField(max_length=3)  # or ALL
    code = models.CharField(max_length=64)

    class Meta:
        constraints = _cells("reason_rollup", ["processor", "currency", "code"])
        indexes = [
            _read_index(
                "reason_rollup",
                ["merchant", "processor", "currency", "grain", "bucket", "code", "count"],
            )
        ]


class BrandRollup(_Cell):
    """Approved and declined charges by payment method and brand."""

    merchant = _all_merchants()
    processor = models.CharField(max_length=64)  # or ALL
    currency = models.CharField(max_length=3)  # or ALL
    method = models.CharField(max_length=16)
    brand = models.CharField(max_length=20)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)  # succeeded / failed

    class Meta:
        constraints = _cells(
            "brand_rollup", ["processor", "currency", "method", "brand", "outcome"]
        )
        indexes = [
            _read_index(
                "brand_rollup",
                [
                    "merchant",
                    "processor",
                    "currency",
                    "grain",
                    "bucket",
                    "method",
                    "brand",
                    "outcome",
                    "count",
                ],
            )
        ]


class BinRollup(_Cell):
    merchant = _all_merchants()
    brand = models.CharField(max_length=20)
    bin = models.CharField(max_length=6)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)

    class Meta:
        constraints = _cells("bin_rollup", ["brand", "bin", "outcome"])
        indexes = [
            _read_index(
                "bin_rollup", ["merchant", "grain", "bucket", "brand", "bin", "outcome", "count"]
            )
        ]


class CustomerRollup(_Measured):
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+")
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
            # A day's biggest cells first: what TopCustomerRollup is refreshed from.
            models.Index(
                fields=["grain", "bucket", "currency", "-amount"], name="customer_rollup_top"
            ),
            models.Index(
                fields=["grain", "bucket", "currency", "merchant", "-amount"],
                name="customer_rollup_top_merchant",
            ),
        ]


# How many of a day's customers TopCustomerRollup keeps per merchant (and over
# all merchants) and currency.
TOP_PER_DAY = 100


class TopCustomerRollup(_Measured):
    """The `TOP_PER_DAY` biggest `CustomerRollup` cells of each day (and
    week), currency and merchant — and over every merchant (merchant NULL) — ties broken by
    customer id. Not additive: the projector recomputes a (day, merchant,
    currency) group from `CustomerRollup` whenever it touches it, the
    rebuild ranks every group, verify ranks the recomputed cells."""

    merchant = _all_merchants()
    currency = models.CharField(max_length=3)
    customer_id = models.CharField(max_length=40)

    class Meta:
        constraints = _cells("top_customer_rollup", ["currency", "customer_id"])
        indexes = [
            _read_index(
                "top_customer_rollup",
                ["merchant", "currency", "grain", "bucket", "customer_id", "count", "amount"],
            )
        ]


class StatusRollup(_Cell):
    merchant = _all_merchants()
    status = models.CharField(max_length=32)

    class Meta:
        constraints = _cells("status_rollup", ["status"])
        indexes = [_read_index("status_rollup", ["merchant", "grain", "bucket", "status", "count"])]


class Checkpoint(models.Model):
    """How far a projector has read the published event log: the outbox
    `position` of the last event it counted. Advanced in the transaction
    that writes the rollup rows, so each event is counted exactly once."""

    name = models.CharField(primary_key=True, max_length=32)
    position = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"
