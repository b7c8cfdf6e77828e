"""Reads of the rollups for the dashboard, always merchant-scoped (STYLE 1).

Every function takes a `Scope` — the merchants the user may see (narrowed
by the merchant filter), the processor and currency filters and a `Window`
of buckets — and reads only rollup tables, never payments, so a chart costs
the same at 10 M payments as at ten: what a query reads is bounded by
buckets x dimension cells, not by payments. The window picks its grain so a
chart has at most ~180 points: minutes up to 3 h, hours up to 8 days, days
beyond.

Money is never summed across currencies: money figures are in one
`currency` — the filter's, or else the one with the most payments in the
window — and the others are listed beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from analytics.models import (
    HISTOGRAM,
    LATENCY_BOUNDS_MS,
    BinRollup,
    CustomerRollup,
    Grain,
    Outcome,
    Rollup,
    SeriesRollup,
    StatusRollup,
)
from analytics.services import minute_retention

RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_RANGE = "24h"
MAX_CUSTOM = timedelta(days=400)


def _grain_for(length: timedelta) -> int:
    if length <= timedelta(hours=3):
        return Grain.MINUTE
    if length <= timedelta(days=8):
        return Grain.HOUR
    return Grain.DAY


@dataclass(frozen=True)
class Window:
    """Buckets [start, end) of one grain (Unix seconds, aligned)."""

    start: int
    end: int
    grain: int

    @classmethod
    def build(cls, start: datetime, end: datetime, *, now: datetime | None = None) -> Window:
        now = now or timezone.now()
        grain = _grain_for(end - start)
        if grain == Grain.MINUTE and start < now - minute_retention():
            grain = Grain.HOUR  # minute cells are pruned after the retention
        first = int(start.timestamp()) // grain * grain
        last = -(-int(end.timestamp()) // grain) * grain  # round up: the current bucket counts
        return cls(first, max(last, first + grain), grain)

    @classmethod
    def last(cls, name: str, *, now: datetime | None = None) -> Window:
        now = now or timezone.now()
        return cls.build(now - RANGES[name], now, now=now)

    @property
    def previous(self) -> Window:
        return Window(2 * self.start - self.end, self.start, self.grain)

    def coarser(self, grains: Sequence[int]) -> Window:
        """The same window in the finest of `grains` at least as coarse as this one."""
        grain = min(g for g in grains if g >= self.grain)
        return Window(self.start // grain * grain, -(-self.end // grain) * grain, grain)

    def buckets(self) -> list[int]:
        return list(range(self.start, self.end, self.grain))

    @staticmethod
    def at(bucket: int) -> datetime:
        return datetime.fromtimestamp(bucket, tz=UTC)


@dataclass(frozen=True)
class Scope:
    merchant_ids: tuple[int, ...] | None  # None: every merchant (staff)
    window: Window
    processor: str = ""
    currency: str = ""

    def rows(self, model: Any, *, window: Window | None = None, dims: bool = True) -> QuerySet[Any]:
        window = window or self.window
        query = model.objects.filter(
            grain=window.grain, bucket__gte=window.start, bucket__lt=window.end
        )
        if self.merchant_ids is not None:
            query = query.filter(merchant_id__in=self.merchant_ids)
        if dims and self.processor:
            query = query.filter(processor=self.processor)
        if dims and self.currency:
            query = query.filter(currency=self.currency)
        return query.order_by()


def rate(part: int, whole: int) -> float | None:
    return None if not whole else part / whole


def change(current: float | None, previous: float | None) -> float | None:
    """Relative change against the previous period (None when undefined)."""
    if current is None or not previous:
        return None
    return (current - previous) / previous


# --- Series, KPIs, mixes ----------------------------------------------------------


@dataclass
class Totals:
    succeeded: int = 0
    failed: int = 0
    volume: int = 0  # succeeded amount in the display currency
    refunds: int = 0  # refunds created (count)
    refunded: int = 0  # net refunded amount in the display currency
    disputes: int = 0
    disputed: int = 0

    @property
    def success_rate(self) -> float | None:
        return rate(self.succeeded, self.succeeded + self.failed)

    @property
    def average_ticket(self) -> float | None:
        return None if not self.succeeded_in_currency else self.volume / self.succeeded_in_currency

    succeeded_in_currency: int = 0


@dataclass
class Overview:
    scope: Scope
    currency: str
    currencies: dict[str, dict[str, int]]  # currency -> {"count", "amount"} of succeeded
    current: Totals
    previous: Totals
    buckets: list[int]
    series: dict[str, list[int]]  # succeeded, failed, volume, refunds, disputes per bucket

    @property
    def empty(self) -> bool:
        return not (self.current.succeeded or self.current.failed or self.previous.succeeded)


def _fold(totals: Totals, outcome: str, currency: str, count: int, amount: int, shown: str) -> None:
    in_currency = currency == shown
    if outcome == Outcome.SUCCEEDED:
        totals.succeeded += count
        if in_currency:
            totals.volume += amount
            totals.succeeded_in_currency += count
    elif outcome == Outcome.FAILED:
        totals.failed += count
    elif outcome == Outcome.REFUNDED:
        totals.refunds += count
        if in_currency:
            totals.refunded += amount
    elif outcome == Outcome.REFUND_FAILED:
        if in_currency:
            totals.refunded -= amount
    elif outcome == Outcome.DISPUTED:
        totals.disputes += count
        if in_currency:
            totals.disputed += amount


def overview(scope: Scope) -> Overview:
    """KPIs for the window and the one before it, and the time series: two
    queries on the series rollup."""
    window = scope.window
    rows = list(
        scope.rows(SeriesRollup)
        .values("bucket", "outcome", "currency")
        .annotate(n=Sum("count"), total=Sum("amount"))
    )
    previous_rows = list(
        scope.rows(SeriesRollup, window=window.previous)
        .values("outcome", "currency")
        .annotate(n=Sum("count"), total=Sum("amount"))
    )
    currencies: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "amount": 0})
    for row in rows:
        if row["outcome"] == Outcome.SUCCEEDED:
            currencies[row["currency"]]["count"] += row["n"]
            currencies[row["currency"]]["amount"] += row["total"]
    shown = scope.currency or (
        max(currencies, key=lambda c: (currencies[c]["count"], c)) if currencies else "usd"
    )
    current, previous = Totals(), Totals()
    index = {bucket: i for i, bucket in enumerate(window.buckets())}
    series = {
        name: [0] * len(index) for name in ("succeeded", "failed", "volume", "refunds", "disputes")
    }
    for row in rows:
        _fold(current, row["outcome"], row["currency"], row["n"], row["total"], shown)
        i = index.get(row["bucket"])
        if i is None:
            continue
        if row["outcome"] == Outcome.SUCCEEDED:
            series["succeeded"][i] += row["n"]
            if row["currency"] == shown:
                series["volume"][i] += row["total"]
        elif row["outcome"] == Outcome.FAILED:
            series["failed"][i] += row["n"]
        elif row["outcome"] == Outcome.REFUNDED:
            series["refunds"][i] += row["n"]
        elif row["outcome"] == Outcome.DISPUTED:
            series["disputes"][i] += row["n"]
    for row in previous_rows:
        _fold(previous, row["outcome"], row["currency"], row["n"], row["total"], shown)
    ordered = dict(sorted(currencies.items(), key=lambda item: -item[1]["count"]))
    return Overview(scope, shown, ordered, current, previous, window.buckets(), series)


def kpis(scope: Scope) -> Overview:
    """The KPI cards' data (the same two queries; the live refresh reads it)."""
    return overview(scope)


# --- Breakdowns -----------------------------------------------------------------


@dataclass
class Breakdown:
    failure_reasons: list[tuple[str, int]]
    brands: list[dict[str, Any]]  # {"method", "brand", "succeeded", "failed", "rate"}


def breakdown(scope: Scope) -> Breakdown:
    """Failure reasons and the method/brand mix: one query on the full rollup."""
    rows = (
        scope.rows(Rollup)
        .filter(outcome__in=(Outcome.SUCCEEDED, Outcome.FAILED))
        .values("outcome", "code", "method", "brand")
        .annotate(n=Sum("count"))
    )
    reasons: dict[str, int] = defaultdict(int)
    brands: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["method"], row["brand"])
        cell = brands.setdefault(
            key, {"method": key[0], "brand": key[1], "succeeded": 0, "failed": 0}
        )
        cell[row["outcome"]] += row["n"]
        if row["outcome"] == Outcome.FAILED:
            reasons[row["code"] or "unknown"] += row["n"]
    for cell in brands.values():
        cell["rate"] = rate(cell["succeeded"], cell["succeeded"] + cell["failed"])
    return Breakdown(
        failure_reasons=sorted(reasons.items(), key=lambda item: (-item[1], item[0])),
        brands=sorted(brands.values(), key=lambda c: -(c["succeeded"] + c["failed"])),
    )


@dataclass
class ProcessorStats:
    name: str
    succeeded: int
    failed: int
    rate: float | None
    p50: float | None
    p95: float | None
    p99: float | None


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram, interpolated linearly
    inside its bucket (the open last bucket is taken as twice its floor)."""
    total = sum(histogram)
    if not total:
        return None
    target = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= target:
            low = 0 if index == 0 else LATENCY_BOUNDS_MS[index - 1]
            high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else 2 * low
            return low + (high - low) * (target - seen) / count
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])


def processors(scope: Scope) -> list[ProcessorStats]:
    """Success rate and latency percentiles per processor (series rollup)."""
    sums = {name: Sum(name) for name in HISTOGRAM}
    rows = (
        scope.rows(SeriesRollup)
        .filter(outcome__in=(Outcome.SUCCEEDED, Outcome.FAILED))
        .values("processor", "outcome")
        .annotate(n=Sum("count"), **sums)
    )
    by_name: dict[str, dict[str, Any]] = {}
    for row in rows:
        cell = by_name.setdefault(
            row["processor"], {"succeeded": 0, "failed": 0, "hist": [0] * len(HISTOGRAM)}
        )
        cell[row["outcome"]] += row["n"]
        cell["hist"] = [a + (row[h] or 0) for a, h in zip(cell["hist"], HISTOGRAM, strict=True)]
    return [
        ProcessorStats(
            name=name,
            succeeded=cell["succeeded"],
            failed=cell["failed"],
            rate=rate(cell["succeeded"], cell["succeeded"] + cell["failed"]),
            p50=percentile(cell["hist"], 0.50),
            p95=percentile(cell["hist"], 0.95),
            p99=percentile(cell["hist"], 0.99),
        )
        for name, cell in sorted(by_name.items())
    ]


def status_distribution(scope: Scope) -> list[tuple[str, int]]:
    """Payments created in the window by their current status (merchant
    filter only: a payment's currency and processor may change)."""
    window = scope.window.coarser((Grain.HOUR, Grain.DAY))
    rows = (
        scope.rows(StatusRollup, window=window, dims=False)
        .values("status")
        .annotate(n=Sum("count"))
    )
    return sorted(
        ((r["status"], r["n"]) for r in rows if r["n"]), key=lambda item: (-item[1], item[0])
    )


@dataclass
class CustomerVolume:
    customer_id: str
    count: int
    amount: int
    label: str = ""


PER_DAY = 200


def top_customers(scope: Scope, currency: str, *, limit: int = 10) -> list[CustomerVolume]:
    """Customers by succeeded volume in `currency` over the days the window
    touches (the customer rollup is daily; the processor filter does not
    apply).

    Bounded at any scale: on PostgreSQL it reads at most the PER_DAY
    biggest customer cells of each day (a LATERAL index scan per day), so a
    90-day window reads ≤ 18,000 cells however many customers pay. A
    customer is then counted only on the days they were among that day's
    top PER_DAY — exact for every window with fewer customers per day, an
    under-estimate for a customer who spreads small payments thinly over
    many days of a huge one (docs/analytics.md)."""
    window = scope.window.coarser((Grain.DAY,))
    if connection.vendor == "postgresql":
        top = _top_customers_lateral(scope, window, currency, limit)
    else:
        rows = (
            scope.rows(CustomerRollup, window=window, dims=False)
            .filter(currency=currency)
            .values("customer_id")
            .annotate(n=Sum("count"), total=Sum("amount"))
            .order_by("-total", "customer_id")[:limit]
        )
        top = [CustomerVolume(r["customer_id"], r["n"], r["total"]) for r in rows]
    if top:
        from payments.models import Customer

        emails = dict(
            Customer.objects.filter(pk__in=[c.customer_id for c in top]).values_list("pk", "email")
        )
        for customer in top:
            customer.label = emails.get(customer.customer_id) or customer.customer_id
    return top


def _top_customers_lateral(
    scope: Scope, window: Window, currency: str, limit: int
) -> list[CustomerVolume]:
    table = CustomerRollup._meta.db_table
    # One merchant: an equality, so the (…, merchant, -amount) index hands
    # the day's biggest cells of that merchant over in order.
    merchants = "" if scope.merchant_ids is None else "AND merchant_id = ANY(%s)"
    if scope.merchant_ids is not None and len(scope.merchant_ids) == 1:
        merchants = "AND merchant_id = %s"
    params: list[Any] = [window.start, window.end - window.grain, window.grain, currency]
    if scope.merchant_ids is not None:
        one = len(scope.merchant_ids) == 1
        params.append(scope.merchant_ids[0] if one else list(scope.merchant_ids))
    params += [PER_DAY, limit]
    sql = f"""
        SELECT t.customer_id, SUM(t.count), SUM(t.amount) AS total
        FROM generate_series(%s::bigint, %s::bigint, %s::bigint) AS d(bucket)
        CROSS JOIN LATERAL (
            SELECT customer_id, count, amount FROM {table}
            WHERE grain = 86400 AND bucket = d.bucket AND currency = %s {merchants}
            ORDER BY amount DESC LIMIT %s
        ) t
        GROUP BY t.customer_id ORDER BY total DESC, t.customer_id LIMIT %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [CustomerVolume(row[0], int(row[1]), int(row[2])) for row in cursor.fetchall()]


@dataclass
class BinStats:
    brand: str
    bin: str
    succeeded: int
    failed: int
    rate: float | None = field(default=None)


def bins(scope: Scope, *, limit: int = 12) -> list[BinStats]:
    """Approval rate by card BIN and brand, the busiest BINs first (merchant
    filter only)."""
    window = scope.window.coarser((Grain.HOUR, Grain.DAY))
    rows = (
        scope.rows(BinRollup, window=window, dims=False)
        .values("brand", "bin", "outcome")
        .annotate(n=Sum("count"))
    )
    stats: dict[tuple[str, str], BinStats] = {}
    for row in rows:
        cell = stats.setdefault(
            (row["brand"], row["bin"]), BinStats(row["brand"], row["bin"], 0, 0)
        )
        if row["outcome"] == Outcome.SUCCEEDED:
            cell.succeeded += row["n"]
        else:
            cell.failed += row["n"]
    busiest = sorted(stats.values(), key=lambda s: (-(s.succeeded + s.failed), s.bin))[:limit]
    return [replace(s, rate=rate(s.succeeded, s.succeeded + s.failed)) for s in busiest]


def filter_options(merchant_ids: tuple[int, ...] | None) -> dict[str, list[str]]:
    """Processors and currencies seen in the last 90 days (for the filters).

    Two DISTINCT scans of 90 days of cells: cached for a minute per scope,
    since a new processor or currency appearing a minute late in a drop-down
    is harmless."""
    key = "analytics:filter-options:" + (
        "all" if merchant_ids is None else ",".join(map(str, merchant_ids))
    )
    cached = cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    window = Window.last("90d").coarser((Grain.DAY,))
    query = SeriesRollup.objects.filter(grain=Grain.DAY, bucket__gte=window.start)
    if merchant_ids is not None:
        query = query.filter(Q(merchant_id__in=merchant_ids))
    options = {
        "processors": sorted(set(query.values_list("processor", flat=True).distinct())),
        "currencies": sorted(set(query.values_list("currency", flat=True).distinct())),
    }
    cache.set(key, options, 60)
    return options
