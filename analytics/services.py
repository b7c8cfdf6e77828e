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
    HISTOGRAM,
    BinRollup,
    Checkpoint,
    CustomerRollup,
    Grain,
    Outcome,
    Rollup,
    SeriesRollup,
    StatusRollup,
)
from payments.models import Event, OutboxMessage

CHECKPOINT = "rollups"
BATCH = 2000


def minute_retention() -> timedelta:
    return timedelta(hours=getattr(settings, "PAYLAB_ANALYTICS_MINUTE_RETENTION_HOURS", 48))


@dataclass(frozen=True)
class Cube:
    """One rollup table: its dimensions (fact attributes and columns), grains,
    measures, and which facts it counts."""

    model: type[models.Model]
    dims: tuple[str, ...]
    grains: tuple[int, ...]
    amount: bool = False
    histogram: bool = False
    status: bool = False  # fed by status facts (count = sum of deltas)
    keep: Callable[[Any], bool] = lambda fact: True
    keep_sql: str = "1 = 1"

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


ALL_GRAINS = (Grain.MINUTE.value, Grain.HOUR.value, Grain.DAY.value)
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
    ),
    Cube(
        BinRollup,
        ("merchant_id", "brand", "bin", "outcome"),
        (Grain.HOUR.value, Grain.DAY.value),
        keep=lambda f: f.bin != "" and f.outcome in (Outcome.SUCCEEDED, Outcome.FAILED),
        keep_sql=f"bin <> '' AND outcome IN ('{Outcome.SUCCEEDED}', '{Outcome.FAILED}')",
    ),
    Cube(
        CustomerRollup,
        ("merchant_id", "currency", "customer_id"),
        (Grain.DAY.value,),
        amount=True,
        keep=lambda f: f.customer_id is not None and f.outcome == Outcome.SUCCEEDED,
        keep_sql=f"customer_id IS NOT NULL AND outcome = '{Outcome.SUCCEEDED}'",
    ),
    Cube(
        StatusRollup,
        ("merchant_id", "status"),
        (Grain.HOUR.value, Grain.DAY.value),
        status=True,
    ),
)


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


def _upsert(cube: Cube, cells: Cells) -> None:
    if not cells:
        return
    columns = (*cube.key, *cube.measures)
    placeholders = ", ".join(["%s"] * len(columns))
    updates = ", ".join(f"{m} = {cube.table}.{m} + excluded.{m}" for m in cube.measures)
    sql = (
        f"INSERT INTO {cube.table} ({', '.join(columns)}) VALUES ({placeholders}) "  # noqa: S608
        f"ON CONFLICT ({', '.join(cube.key)}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(*key, *measures) for key, measures in sorted(cells.items())])


def _checkpoint_locked() -> Checkpoint:
    Checkpoint.objects.get_or_create(name=CHECKPOINT)
    return Checkpoint.objects.select_for_update().get(name=CHECKPOINT)


def project_events(events: Sequence[Event]) -> None:
    """Add these events to every rollup (inside the caller's transaction)."""
    charge = facts.charge_facts(events)
    status = facts.status_facts(events)
    for cube in CUBES:
        _upsert(cube, fold(cube, status if cube.status else charge))


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
                say(f"{cube.model.__name__} rebuilt in {time.monotonic() - started:.1f}s")
            _drop_fact_tables(cursor)
        checkpoint.position = position
        checkpoint.save(update_fields=["position", "updated"])
    return written


def expected_cells(position: int, *, since_minute: int) -> dict[str, Cells]:
    """What each cube must hold for the events covered by `position` (verify)."""
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
                expected[cube.model.__name__] = cells
        finally:
            _drop_fact_tables(cursor)
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
