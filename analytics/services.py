"""Rollup writes: the incremental projector, the set-based rebuild, pruning.

Why a projector over the *published* log (not a hook in the payment's
transaction): every payment in one minute for one merchant/processor/
currency lands on the same rollup row, so updating it inside the payment
transaction would serialise concurrent payments on that row's lock and
put 9 upserts on the API's hot path. Instead the projector reads committed
events in the outbox's publication order (`OutboxMessage.position`, gap-free
and committed in order — payments.services.outbox), folds a batch in
memory, and upserts the cells (`INSERT … ON CONFLICT DO UPDATE SET n = n +
excluded.n`, the same SQL on PostgreSQL and SQLite) in ONE transaction with
the advance of its `Checkpoint` row, which it holds locked: a crash rolls
both back, a second projector waits on the lock and then starts after the
first's checkpoint — each event is counted exactly once. The cost is lag:
publication (the relay, ~50 ms) plus the projector's period (a Celery beat
task every second, or `manage.py rollups project`).

The rebuild recomputes every table from the event log with INSERT … SELECT
… GROUP BY — no Python loop over payments — and sets the checkpoint to
the last published position, counting exactly the events a projector at
that checkpoint would have counted (analytics.facts.covered_sql): the two
never double count.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Max
from django.utils import timezone

from analytics import facts
from analytics.models import (
    ALL,
    HISTOGRAM,
    TOP_PER_DAY,
    BinRollup,
    BrandRollup,
    Checkpoint,
    CustomerRollup,
    Grain,
    Outcome,
    ReasonRollup,
    Rollup,
    SeriesRollup,
    StatusRollup,
    TopCustomerRollup,
)
from payments.models import Event, OutboxMessage

CHECKPOINT = "rollups"
BATCH = 2000


def minute_retention() -> timedelta:
    return timedelta(hours=getattr(settings, "PAYLAB_ANALYTICS_MINUTE_RETENTION_HOURS", 48))


@dataclass(frozen=True)
class Cube:
    """One rollup table: its dimensions (fact attributes and columns), grains,
    measures, and which facts it counts.

    `totals` are the dimensions that also have a total member (merchant_id
    NULL, any other `ALL`): each fact is added to its own cell and to every
    cell with some of those dimensions replaced by their total — 2^k cells,
    which the projector folds in memory and the rebuild derives from the
    base cells with one GROUP BY per combination."""

    model: type[models.Model]
    dims: tuple[str, ...]
    grains: tuple[int, ...]
    amount: bool = False
    histogram: bool = False
    status: bool = False  # fed by status facts (count = sum of deltas)
    keep: Callable[[Any], bool] = lambda fact: True
    keep_sql: str = "1 = 1"
    totals: tuple[str, ...] = ()

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def measures(self) -> tuple[str, ...]:
        return (
            ("count",)
            + (("amount",) if self.amount else ())
            + (HISTOGRAM if self.histogram else ())
        )

    @property
    def key(self) -> tuple[str, ...]:
        return ("grain", "bucket", *self.dims)

    def total_combinations(self) -> list[tuple[str, ...]]:
        """Every non-empty set of `totals` dimensions, as they are replaced."""
        return [
            combo
            for size in range(1, len(self.totals) + 1)
            for combo in itertools.combinations(self.totals, size)
        ]


def total_of(dim: str) -> str | None:
    """The total member of a dimension: NULL for the merchant, else `ALL`."""
    return None if dim == "merchant_id" else ALL


def total_sql(dim: str) -> str:
    return "NULL" if dim == "merchant_id" else f"'{ALL}'"


def base_sql(dim: str) -> str:
    """A condition true of the cells that are not the dimension's total."""
    return "merchant_id IS NOT NULL" if dim == "merchant_id" else f"{dim} <> '{ALL}'"


ALL_GRAINS = (Grain.MINUTE.value, Grain.HOUR.value, Grain.DAY.value)
DECIDED = (Outcome.SUCCEEDED, Outcome.FAILED)
DECIDED_SQL = f"outcome IN ('{Outcome.SUCCEEDED}', '{Outcome.FAILED}')"
CUBES: tuple[Cube, ...] = (
    Cube(
        Rollup,
        ("merchant_id", "processor", "currency", "method", "brand", "outcome", "code"),
        ALL_GRAINS,
        amount=True,
        histogram=True,
    ),
    Cube(
        SeriesRollup,
        ("merchant_id", "processor", "currency", "outcome"),
        ALL_GRAINS,
        amount=True,
        histogram=True,
        totals=("merchant_id", "processor"),
    ),
    Cube(
        ReasonRollup,
        ("merchant_id", "processor", "currency", "code"),
        ALL_GRAINS,
        keep=lambda f: f.outcome == Outcome.FAILED,
        keep_sql=f"outcome = '{Outcome.FAILED}'",
        totals=("merchant_id", "processor", "currency"),
    ),
    Cube(
        BrandRollup,
        ("merchant_id", "processor", "currency", "method", "brand", "outcome"),
        ALL_GRAINS,
        keep=lambda f: f.outcome in DECIDED,
        keep_sql=DECIDED_SQL,
        totals=("merchant_id", "processor", "currency"),
    ),
    Cube(
        BinRollup,
        ("merchant_id", "brand", "bin", "outcome"),
        (Grain.HOUR.value, Grain.DAY.value),
        keep=lambda f: f.bin != "" and f.outcome in DECIDED,
        keep_sql=f"bin <> '' AND {DECIDED_SQL}",
        totals=("merchant_id",),
    ),
    Cube(
        CustomerRollup,
        ("merchant_id", "currency", "customer_id"),
        (Grain.DAY.value, Grain.WEEK.value),
        amount=True,
        keep=lambda f: f.customer_id is not None and f.outcome == Outcome.SUCCEEDED,
        keep_sql=f"customer_id IS NOT NULL AND outcome = '{Outcome.SUCCEEDED}'",
    ),
    Cube(
        StatusRollup,
        ("merchant_id", "status"),
        (Grain.HOUR.value, Grain.DAY.value),
        status=True,
        totals=("merchant_id",),
    ),
)
CUSTOMERS = next(cube for cube in CUBES if cube.model is CustomerRollup)
# Not summed from facts but ranked from CustomerRollup (see TopCustomerRollup).
TOP_CUSTOMERS = Cube(
    TopCustomerRollup,
    ("merchant_id", "currency", "customer_id"),
    (Grain.DAY.value, Grain.WEEK.value),
    amount=True,
    totals=("merchant_id",),
)
# Every table verify compares and the tests read.
TABLES: tuple[Cube, ...] = (*CUBES, TOP_CUSTOMERS)


# --- Incremental ----------------------------------------------------------------

Cells = dict[tuple[Any, ...], list[int]]


def fold(cube: Cube, cube_facts: Iterable[Any], cells: Cells | None = None) -> Cells:
    """Sum facts into the cube's cells: key → measures (as in `Cube.measures`)."""
    cells = cells if cells is not None else defaultdict(lambda: [0] * len(cube.measures))
    for fact in cube_facts:
        if not cube.keep(fact):
            continue
        dims = tuple(getattr(fact, d) for d in cube.dims)
        for grain in cube.grains:
            cell = cells[(grain, fact.ts // grain * grain, *dims)]
            if cube.status:
                cell[0] += fact.delta
                continue
            cell[0] += 1
            if cube.amount:
                cell[1] += fact.amount
            if cube.histogram and fact.latency_bucket is not None:
                cell[2 + fact.latency_bucket] += 1
    return cells


def with_totals(cube: Cube, cells: Cells) -> Cells:
    """`cells` (base cells only) plus the total cells they add up to."""
    if not cube.totals:
        return cells
    positions = [2 + cube.dims.index(dim) for dim in cube.totals]
    out: Cells = defaultdict(lambda: [0] * len(cube.measures))
    for key, measures in cells.items():
        for replace in itertools.product((False, True), repeat=len(positions)):
            target = list(key)
            for position, total in zip(positions, replace, strict=True):
                if total:
                    target[position] = total_of(cube.key[position])
            cell = out[tuple(target)]
            for i, value in enumerate(measures):
                cell[i] += value
    return out


def ranked(cells: Cells, *, per_group: int | None = None) -> Cells:
    """TopCustomerRollup's cells from CustomerRollup's: the `per_group`
    biggest of each (grain, bucket, merchant, currency), and of each
    (grain, bucket, currency) over every merchant; ties by customer id."""
    per_group = TOP_PER_DAY if per_group is None else per_group
    groups: dict[tuple[Any, ...], list[tuple[Any, list[int]]]] = defaultdict(list)
    for (grain, bucket, merchant, currency, customer), measures in cells.items():
        groups[(grain, bucket, merchant, currency)].append((customer, measures))
        groups[(grain, bucket, None, currency)].append((customer, measures))
    out: Cells = {}
    for (grain, bucket, merchant, currency), members in groups.items():
        members.sort(key=lambda member: (-member[1][1], member[0]))
        for customer, measures in members[:per_group]:
            out[(grain, bucket, merchant, currency, customer)] = list(measures)
    return out


def _upsert(cube: Cube, cells: Cells) -> None:
    if not cells:
        return
    columns = (*cube.key, *cube.measures)
    placeholders = ", ".join(["%s"] * len(columns))
    updates = ", ".join(f"{m} = {cube.table}.{m} + excluded.{m}" for m in cube.measures)
    insert = f"INSERT INTO {cube.table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    merchant = cube.key.index("merchant_id")
    rows = [(*key, *measures) for key, measures in sorted(cells.items(), key=_sortable)]
    # The every-merchant cells conflict on their own (partial) unique index.
    per_merchant = [row for row in rows if row[merchant] is not None]
    every_merchant = [row for row in rows if row[merchant] is None]
    others = ", ".join(k for k in cube.key if k != "merchant_id")
    with connection.cursor() as cursor:
        if per_merchant:
            cursor.executemany(
                f"{insert} ON CONFLICT ({', '.join(cube.key)}) DO UPDATE SET {updates}",
                per_merchant,
            )
        if every_merchant:
            cursor.executemany(
                f"{insert} ON CONFLICT ({others}) WHERE merchant_id IS NULL "
                f"DO UPDATE SET {updates}",
                every_merchant,
            )


def _sortable(item: tuple[tuple[Any, ...], list[int]]) -> tuple[Any, ...]:
    # Upserting in key order keeps concurrent writers' row locks in one order.
    return tuple((value is not None, value) for value in item[0])


def _collate() -> str:
    # Python's and SQLite's string order is by code point; PostgreSQL's
    # default collation is not, so rank with "C" to agree with `ranked`.
    return ' COLLATE "C"' if connection.vendor == "postgresql" else ""


def _refresh_top_customers(cells: Cells) -> None:
    """Re-rank the (day, merchant, currency) groups of TopCustomerRollup that
    these CustomerRollup cells touched (after they were upserted), and the
    same days' every-merchant groups."""
    top, source = TopCustomerRollup._meta.db_table, CustomerRollup._meta.db_table
    columns = "grain, bucket, merchant_id, currency, customer_id, count, amount"
    order = f"ORDER BY amount DESC, customer_id{_collate()} LIMIT {TOP_PER_DAY}"
    groups = sorted({key[:4] for key in cells})
    every = sorted({(grain, bucket, currency) for grain, bucket, _, currency in groups})
    with connection.cursor() as cursor:
        for grain, bucket, merchant, currency in groups:
            where = "grain = %s AND bucket = %s AND merchant_id = %s AND currency = %s"
            params = [grain, bucket, merchant, currency]
            cursor.execute(f"DELETE FROM {top} WHERE {where}", params)  # noqa: S608
            cursor.execute(
                f"INSERT INTO {top} ({columns}) SELECT {columns} FROM {source} "  # noqa: S608
                f"WHERE {where} {order}",
                params,
            )
        for grain, bucket, currency in every:
            where = "grain = %s AND bucket = %s AND currency = %s"
            params = [grain, bucket, currency]
            cursor.execute(
                f"DELETE FROM {top} WHERE {where} AND merchant_id IS NULL",  # noqa: S608
                params,
            )
            cursor.execute(
                f"INSERT INTO {top} ({columns}) "  # noqa: S608
                f"SELECT grain, bucket, NULL, currency, customer_id, count, amount "
                f"FROM {source} WHERE {where} {order}",
                params,
            )


def _checkpoint_locked() -> Checkpoint:
    Checkpoint.objects.get_or_create(name=CHECKPOINT)
    return Checkpoint.objects.select_for_update().get(name=CHECKPOINT)


def project_events(events: Sequence[Event]) -> None:
    """Add these events to every rollup (inside the caller's transaction)."""
    charge = facts.charge_facts(events)
    status = facts.status_facts(events)
    for cube in CUBES:
        cells = fold(cube, status if cube.status else charge)
        _upsert(cube, with_totals(cube, cells))
        if cube is CUSTOMERS and cells:
            _refresh_top_customers(cells)


def rollups_project(*, limit: int = BATCH) -> int:
    """Count the next `limit` published events after the checkpoint, and
    advance it, in one transaction. Returns how many events were read."""
    with transaction.atomic():
        checkpoint = _checkpoint_locked()
        rows = list(
            OutboxMessage.objects.filter(position__gt=checkpoint.position)
            .order_by("position")
            .values_list("position", "event_id")[:limit]
        )
        if not rows:
            return 0
        # Positions are gap-free and commit in order; stop at a hole rather
        # than skip an event whose position is not yet visible.
        expected = checkpoint.position
        taken = []
        for position, event_id in rows:
            if position != expected + 1:
                break
            taken.append(event_id)
            expected = position
        if not taken:
            return 0
        by_id = Event.objects.in_bulk(taken)
        project_events([by_id[event_id] for event_id in taken])
        checkpoint.position = expected
        checkpoint.save(update_fields=["position", "updated"])
        return len(taken)


def rollups_catch_up(*, max_batches: int = 50, limit: int = BATCH) -> int:
    """Project until the published log is consumed (or `max_batches`)."""
    total = 0
    for _ in range(max_batches):
        done = rollups_project(limit=limit)
        total += done
        if done < limit:
            break
    return total


def rollups_lag(now: datetime | None = None) -> dict[str, Any]:
    """Published events not yet counted, and the age of the oldest."""
    now = now or timezone.now()
    position = Checkpoint.objects.filter(name=CHECKPOINT).values_list("position", flat=True).first()
    waiting = OutboxMessage.objects.filter(position__gt=position or 0)
    oldest = waiting.order_by("position").values_list("published_at", flat=True).first()
    return {
        "checkpoint": position or 0,
        "backlog": waiting.count(),
        "oldest_age_seconds": round((now - oldest).total_seconds(), 3) if oldest else 0.0,
    }


# --- Rebuild --------------------------------------------------------------------

CHARGE_FACTS = "analytics_tmp_charge_facts"
STATUS_FACTS = "analytics_tmp_status_facts"


def cube_select_sql(cube: Cube, grain: int, *, since: int | None = None) -> str:
    """SELECT of the cube's cells at `grain` from the facts temp table."""
    source = STATUS_FACTS if cube.status else CHARGE_FACTS
    bucket = f"(ts / {grain}) * {grain}"
    measures = ["SUM(delta)" if cube.status else "COUNT(*)"]
    if cube.amount:
        measures.append("SUM(amount)")
    if cube.histogram:
        measures += [
            f"SUM(CASE WHEN latency_bucket = {i} THEN 1 ELSE 0 END)" for i in range(len(HISTOGRAM))
        ]
    where = cube.keep_sql + ("" if since is None else f" AND ts >= {int(since)}")
    dims = ", ".join(cube.dims)
    return (
        f"SELECT {grain}, {bucket}, {dims}, {', '.join(measures)} "  # noqa: S608
        f"FROM {source} WHERE {where} GROUP BY {bucket}, {dims}"
    )


def insert_totals(cursor: Any, cube: Cube) -> int:
    """Derive the cube's total cells from its base cells (every grain): one
    INSERT … SELECT … GROUP BY per combination of total dimensions — the
    same sums `with_totals` folds for the projector."""
    if not cube.totals:
        return 0
    written = 0
    base = " AND ".join(base_sql(dim) for dim in cube.totals)
    columns = ", ".join((*cube.key, *cube.measures))
    sums = ", ".join(f"SUM({m})" for m in cube.measures)
    for combo in cube.total_combinations():
        kept = [k for k in cube.key if k not in combo]
        select = ", ".join(total_sql(k) if k in combo else k for k in cube.key)
        cursor.execute(
            f"INSERT INTO {cube.table} ({columns}) SELECT {select}, {sums} "  # noqa: S608
            f"FROM {cube.table} WHERE {base} GROUP BY {', '.join(kept)}"
        )
        written += max(cursor.rowcount, 0)
    return written


def rank_top_customers(cursor: Any) -> int:
    """TopCustomerRollup from the whole CustomerRollup (`ranked`, in SQL)."""
    top, source = TopCustomerRollup._meta.db_table, CustomerRollup._meta.db_table
    columns = "grain, bucket, merchant_id, currency, customer_id, count, amount"
    cursor.execute(f"DELETE FROM {top}")  # noqa: S608
    written = 0
    for merchant, partition in (
        ("merchant_id", "grain, bucket, merchant_id, currency"),
        ("NULL", "grain, bucket, currency"),
    ):
        cursor.execute(
            f"""INSERT INTO {top} ({columns})
                SELECT grain, bucket, {merchant}, currency, customer_id, count, amount
                FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {partition}
                                                   ORDER BY amount DESC, customer_id{_collate()})
                                AS place
                      FROM {source}) ranked
                WHERE place <= {TOP_PER_DAY}"""  # noqa: S608
        )
        written += max(cursor.rowcount, 0)
    return written


def _minute_since(now: datetime) -> int:
    return int((now - minute_retention()).timestamp()) // 60 * 60


def _build_fact_tables(cursor: Any, position: int) -> None:
    for table, select, params in (
        (CHARGE_FACTS, facts.charge_facts_sql(), [position]),
        (STATUS_FACTS, facts.status_facts_sql(), [position, position]),
    ):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TEMPORARY TABLE {table} AS {select}", params)


def _drop_fact_tables(cursor: Any) -> None:
    for table in (CHARGE_FACTS, STATUS_FACTS):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def rollups_rebuild(*, progress: Callable[[str], None] | None = None) -> int:
    """Recompute every rollup from the event log, set-based; returns the
    number of rollup rows written. One transaction: readers see the old
    rollups until it commits; the projector waits on the checkpoint lock
    and resumes after the rebuilt position."""
    say = progress or (lambda message: None)
    now = timezone.now()
    written = 0
    with transaction.atomic():
        checkpoint = _checkpoint_locked()
        position = OutboxMessage.objects.aggregate(top=Max("position"))["top"] or 0
        with connection.cursor() as cursor:
            started = time.monotonic()
            _build_fact_tables(cursor, position)
            say(f"facts extracted from the event log in {time.monotonic() - started:.1f}s")
            for cube in CUBES:
                started = time.monotonic()
                cursor.execute(f"DELETE FROM {cube.table}")  # noqa: S608
                columns = ", ".join((*cube.key, *cube.measures))
                for grain in cube.grains:
                    since = _minute_since(now) if grain == Grain.MINUTE else None
                    cursor.execute(
                        f"INSERT INTO {cube.table} ({columns}) {cube_select_sql(cube, grain, since=since)}"
                    )
                    written += max(cursor.rowcount, 0)
                written += insert_totals(cursor, cube)
                say(f"{cube.model.__name__} rebuilt in {time.monotonic() - started:.1f}s")
            _drop_fact_tables(cursor)
            started = time.monotonic()
            written += rank_top_customers(cursor)
            say(f"TopCustomerRollup rebuilt in {time.monotonic() - started:.1f}s")
        checkpoint.position = position
        checkpoint.save(update_fields=["position", "updated"])
    return written


def expected_cells(position: int, *, since_minute: int) -> dict[str, Cells]:
    """What each table must hold for the events covered by `position` (verify):
    base cells recomputed from the event log in SQL, totals and the top
    customers derived from them in Python (the projector's way)."""
    expected: dict[str, Cells] = {}
    with connection.cursor() as cursor:
        _build_fact_tables(cursor, position)
        try:
            for cube in CUBES:
                cells: Cells = {}
                for grain in cube.grains:
                    since = since_minute if grain == Grain.MINUTE else None
                    cursor.execute(cube_select_sql(cube, grain, since=since))
                    width = len(cube.key)
                    for row in cursor.fetchall():
                        cells[tuple(row[:width])] = [int(v or 0) for v in row[width:]]
                expected[cube.model.__name__] = with_totals(cube, cells)
        finally:
            _drop_fact_tables(cursor)
    expected[TOP_CUSTOMERS.model.__name__] = ranked(expected[CUSTOMERS.model.__name__])
    return expected


def stored_cells(cube: Cube, *, since_minute: int) -> Cells:
    query = cube.model.objects.exclude(grain=Grain.MINUTE, bucket__lt=since_minute)  # type: ignore[attr-defined]
    return {
        tuple(row[: len(cube.key)]): list(row[len(cube.key) :])
        for row in query.values_list(*cube.key, *cube.measures).iterator(chunk_size=5000)
    }


# --- Retention ------------------------------------------------------------------


def rollups_prune(*, now: datetime | None = None) -> int:
    """Drop minute cells older than the retention (hours and days stay)."""
    cutoff = _minute_since(now or timezone.now())
    deleted = 0
    for cube in CUBES:
        if Grain.MINUTE in cube.grains:
            deleted += cube.model.objects.filter(grain=Grain.MINUTE, bucket__lt=cutoff).delete()[0]  # type: ignore[attr-defined]
    return deleted
