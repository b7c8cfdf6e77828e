"""Reads of the rollups for the dashboard, always merchant-scoped (STYLE 1).

Every function takes a `Scope` — the merchants the user may see (narrowed
by the merchant filter), the processor and currency filters and a `Window`
of buckets — and reads only rollup tables, never payments, so a chart costs
the same at 10 M payments as at ten: what a query reads is bounded by
buckets x dimension cells, not by payments. Each chart has its own narrow
table with total members (analytics.models): an unfiltered query reads the
"every merchant / every processor" cells, a filtered one the filter's
cells, so a query reads about as many rows as the chart has numbers. The
window picks its grain so a chart has at most ~180 points: minutes up to
3 h, hours up to 8 days, days beyond (a 24 h range reads hour cells, 90 d
day cells).

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
from django.utils import timezone

from analytics.models import (
    ALL,
    HISTOGRAM,
    LATENCY_BOUNDS_MS,
    BinRollup,
    BrandRollup,
    Grain,
    Outcome,
    ReasonRollup,
    SeriesRollup,
    StatusRollup,
    TopCustomerRollup,
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

    def select(
        self,
        model: Any,
        columns: str,
        *,
        window: Window | None = None,
        processor: bool = False,
        currency: str = "",
        where: str = "",
        params: Sequence[Any] = (),
        tail: str = "",
    ) -> list[tuple[Any, ...]]:
        """`SELECT columns FROM model's table` of this scope's cells in the
        window, then `tail` (GROUP BY …): plain SQL, because building the
        ORM query costs more than PostgreSQL's answer to it.

        Every merchant is the total member (merchant NULL); `processor`: the
        filter's processor, or the every-processor total; `currency`:
        "total" (the filter's or the every-currency total), "split" (the
        filter's, else every currency's own cells) or "" (not filtered)."""
        window = window or self.window
        clauses = ["grain = %s", "bucket >= %s", "bucket < %s"]
        values: list[Any] = [window.grain, window.start, window.end]
        if self.merchant_ids is None:
            clauses.append("merchant_id IS NULL")
        else:
            clauses.append(f"merchant_id IN ({', '.join(['%s'] * len(self.merchant_ids))})")
            values += self.merchant_ids
        if processor:
            clauses.append("processor = %s")
            values.append(self.processor or ALL)
        if currency == "total":
            clauses.append("currency = %s")
            values.append(self.currency or ALL)
        elif currency == "split" and self.currency:
            clauses.append("currency = %s")
            values.append(self.currency)
        if where:
            clauses.append(where)
            values += params
        table = model._meta.db_table
        sql = f"SELECT {columns} FROM {table} WHERE {' AND '.join(clauses)} {tail}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            return cursor.fetchall()

    @property
    def one_cell_per_key(self) -> bool:
        """One merchant or every merchant: each key is one cell (no GROUP BY)."""
        return self.merchant_ids is None or len(self.merchant_ids) == 1


def sums(*columns: str) -> str:
    # SUM of a bigint is a numeric on PostgreSQL: cast back to an integer.
    return ", ".join(f"CAST(SUM({column}) AS BIGINT)" for column in columns)


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
    # (bucket, outcome, currency, count, amount) of both periods, one query:
    # each row is one cell already (one merchant or every merchant, one
    # processor or all), so no GROUP BY.
    both = Window(window.previous.start, window.end, window.grain)
    rows: list[tuple[Any, ...]] = []
    previous_rows: list[tuple[Any, ...]] = []
    for row in _series_rows(scope, both):
        (rows if row[0] >= window.start else previous_rows).append(row)
    currencies: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "amount": 0})
    for _, outcome, currency, n, total in rows:
        if outcome == Outcome.SUCCEEDED:
            currencies[currency]["count"] += n
            currencies[currency]["amount"] += total
    shown = scope.currency or (
        max(currencies, key=lambda c: (currencies[c]["count"], c)) if currencies else "usd"
    )
    current, previous = Totals(), Totals()
    index = {bucket: i for i, bucket in enumerate(window.buckets())}
    series = {
        name: [0] * len(index) for name in ("succeeded", "failed", "volume", "refunds", "disputes")
    }
    for bucket, outcome, currency, n, total in rows:
        _fold(current, outcome, currency, n, total, shown)
        i = index.get(bucket)
        if i is None:
            continue
        if outcome == Outcome.SUCCEEDED:
            series["succeeded"][i] += n
            if currency == shown:
                series["volume"][i] += total
        elif outcome == Outcome.FAILED:
            series["failed"][i] += n
        elif outcome == Outcome.REFUNDED:
            series["refunds"][i] += n
        elif outcome == Outcome.DISPUTED:
            series["disputes"][i] += n
    for _, outcome, currency, n, total in previous_rows:
        _fold(previous, outcome, currency, n, total, shown)
    ordered = dict(sorted(currencies.items(), key=lambda item: -item[1]["count"]))
    return Overview(scope, shown, ordered, current, previous, window.buckets(), series)


def _series_rows(scope: Scope, window: Window) -> list[tuple[Any, ...]]:
    columns = "bucket, outcome, currency"
    if scope.one_cell_per_key:
        return scope.select(
            SeriesRollup,
            f"{columns}, count, amount",
            window=window,
            processor=True,
            currency="split",
        )
    return scope.select(
        SeriesRollup,
        f"{columns}, {sums('count', 'amount')}",
        window=window,
        processor=True,
        currency="split",
        tail=f"GROUP BY {columns}",
    )


def kpis(scope: Scope) -> Overview:
    """The KPI cards' data (the same two queries; the live refresh reads it)."""
    return overview(scope)


# --- Breakdowns -----------------------------------------------------------------


@dataclass
class Breakdown:
    failure_reasons: list[tuple[str, int]]
    brands: list[dict[str, Any]]  # {"method", "brand", "succeeded", "failed", "rate"}


def breakdown(scope: Scope) -> Breakdown:
    """Failure reasons and the method/brand mix: one small query on each of
    their tables."""
    reasons: dict[str, int] = defaultdict(int)
    for code, n in scope.select(
        ReasonRollup,
        f"code, {sums('count')}",
        processor=True,
        currency="total",
        tail="GROUP BY code",
    ):
        reasons[code or "unknown"] += n
    brands: dict[tuple[str, str], dict[str, Any]] = {}
    for method, brand, outcome, n in scope.select(
        BrandRollup,
        f"method, brand, outcome, {sums('count')}",
        processor=True,
        currency="total",
        tail="GROUP BY method, brand, outcome",
    ):
        cell = brands.setdefault(
            (method, brand), {"method": method, "brand": brand, "succeeded": 0, "failed": 0}
        )
        cell[outcome] += n
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
    """Success rate and latency percentiles per processor (series rollup,
    every merchant's or the scope's cells of each processor)."""
    # One processor's cells, or each processor's (not the every-processor total).
    rows = scope.select(
        SeriesRollup,
        f"processor, outcome, {sums('count', *HISTOGRAM)}",
        currency="split",
        where=f"outcome IN (%s, %s) AND {'processor = %s' if scope.processor else 'processor <> %s'}",
        params=(Outcome.SUCCEEDED, Outcome.FAILED, scope.processor or ALL),
        tail="GROUP BY processor, outcome",
    )
    by_name: dict[str, dict[str, Any]] = {}
    for name, outcome, n, *histogram in rows:
        cell = by_name.setdefault(name, {"succeeded": 0, "failed": 0, "hist": [0] * len(HISTOGRAM)})
        cell[outcome] += n
        cell["hist"] = [a + (b or 0) for a, b in zip(cell["hist"], histogram, strict=True)]
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


@dataclass
class ProcessorTrend:
    """One processor over a window, bucket by bucket (for sparklines)."""

    name: str
    buckets: list[int]
    success_rate: list[float | None]  # per bucket; None: no payment in it
    p50: list[float | None]  # ms, per bucket
    succeeded: int = 0
    failed: int = 0
    histogram: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return rate(self.succeeded, self.succeeded + self.failed)

    @property
    def p99(self) -> float | None:
        return percentile(self.histogram, 0.99)


def processor_trends(scope: Scope) -> dict[str, ProcessorTrend]:
    """Success rate and median latency of each processor, bucket by bucket
    over the scope's window, from the same series cells as `processors`."""
    rows = scope.select(
        SeriesRollup,
        f"processor, bucket, outcome, {sums('count', *HISTOGRAM)}",
        currency="split",
        where="outcome IN (%s, %s) AND processor <> %s",
        params=(Outcome.SUCCEEDED, Outcome.FAILED, ALL),
        tail="GROUP BY processor, bucket, outcome",
    )
    width = len(HISTOGRAM)
    cells: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for name, bucket, outcome, n, *histogram in rows:
        cell = cells[name].setdefault(bucket, {"succeeded": 0, "failed": 0, "hist": [0] * width})
        cell[outcome] += n
        cell["hist"] = [a + (b or 0) for a, b in zip(cell["hist"], histogram, strict=True)]
    buckets = scope.window.buckets()
    trends = {}
    for name, by_bucket in cells.items():
        trend = ProcessorTrend(name, buckets, [], [], histogram=[0] * width)
        for bucket in buckets:
            if bucket not in by_bucket:
                trend.success_rate.append(None)
                trend.p50.append(None)
                continue
            cell = by_bucket[bucket]
            trend.succeeded += cell["succeeded"]
            trend.failed += cell["failed"]
            trend.histogram = [a + b for a, b in zip(trend.histogram, cell["hist"], strict=True)]
            trend.success_rate.append(rate(cell["succeeded"], cell["succeeded"] + cell["failed"]))
            trend.p50.append(percentile(cell["hist"], 0.50))
        trends[name] = trend
    return trends


def status_distribution(scope: Scope) -> list[tuple[str, int]]:
    """Payments created in the window by their current status (merchant
    filter only: a payment's currency and processor may change)."""
    window = scope.window.coarser((Grain.HOUR, Grain.DAY))
    rows = scope.select(
        StatusRollup, f"status, {sums('count')}", window=window, tail="GROUP BY status"
    )
    return sorted(((status, n) for status, n in rows if n), key=lambda item: (-item[1], item[0]))


@dataclass
class CustomerVolume:
    customer_id: str
    count: int
    amount: int
    label: str = ""


def top_customers(scope: Scope, currency: str, *, limit: int = 10) -> list[CustomerVolume]:
    """Customers by succeeded volume in `currency` over the days the window
    touches (the processor filter does not apply).

    Reads TopCustomerRollup: the biggest TOP_PER_DAY customers of the
    scope's merchant (or of every merchant) of each whole week inside the
    window and of each day at its edges, so a 90-day window reads at most
    ~20 x TOP_PER_DAY rows however many customers pay. A customer is
    counted only in the weeks (days) they were among its biggest — exact for
    every window with fewer paying customers a day than that, an
    under-estimate for a customer who spreads small payments thinly over a
    huge one (docs/analytics.md)."""
    days = scope.window.coarser((Grain.DAY,))
    week = Grain.WEEK.value
    first_week, last_week = -(-days.start // week) * week, days.end // week * week
    if first_week >= last_week:
        parts = [days]
    else:
        parts = [
            Window(days.start, first_week, Grain.DAY),
            Window(first_week, last_week, week),
            Window(last_week, days.end, Grain.DAY),
        ]
    volumes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for part in parts:
        if part.start >= part.end:
            continue
        for customer_id, n, total in scope.select(
            TopCustomerRollup,
            f"customer_id, {sums('count', 'amount')}",
            window=part,
            where="currency = %s",
            params=(currency,),
            tail="GROUP BY customer_id",
        ):
            volumes[customer_id][0] += n
            volumes[customer_id][1] += total
    biggest = sorted(volumes.items(), key=lambda item: (-item[1][1], item[0]))[:limit]
    top = [CustomerVolume(customer_id, n, total) for customer_id, (n, total) in biggest]
    if top:
        from payments.models import Customer

        emails = dict(
            Customer.objects.filter(pk__in=[c.customer_id for c in top]).values_list("pk", "email")
        )
        for customer in top:
            customer.label = emails.get(customer.customer_id) or customer.customer_id
    return top


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
    rows = scope.select(
        BinRollup,
        f"brand, bin, outcome, {sums('count')}",
        window=window,
        tail="GROUP BY brand, bin, outcome",
    )
    stats: dict[tuple[str, str], BinStats] = {}
    for brand, bin_, outcome, n in rows:
        cell = stats.setdefault((brand, bin_), BinStats(brand, bin_, 0, 0))
        if outcome == Outcome.SUCCEEDED:
            cell.succeeded += n
        else:
            cell.failed += n
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
    scope = Scope(merchant_ids, Window.last("90d").coarser((Grain.DAY,)))
    rows = scope.select(
        SeriesRollup,
        "DISTINCT processor, currency",
        where="processor <> %s",
        params=(ALL,),
    )
    options = {
        "processors": sorted({processor for processor, _ in rows}),
        "currencies": sorted({currency for _, currency in rows}),
    }
    cache.set(key, options, 60)
    return options
