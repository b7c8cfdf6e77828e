"""Reads of simulation runs for the API, the dashboard and the command.

Always merchant-scoped when a merchant is given (a merchant's key or user
sees its own runs only); staff pass None.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from simulator.models import COUNTERS, FollowUp, SimulationRun


def runs(merchant_id: int | None) -> QuerySet[SimulationRun]:
    query = SimulationRun.objects.all()
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    return query


def get_run(run_id: str, merchant_id: int | None) -> SimulationRun | None:
    return runs(merchant_id).filter(pk=run_id).first()


@dataclass(frozen=True)
class Progress:
    counters: dict[str, int]
    failures: dict[str, int]
    done: int  # primary operations committed
    planned: int
    follow_ups_pending: int
    elapsed: float
    actual_rate: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.planned) if self.planned else 1.0


def progress(run: SimulationRun, *, now: datetime | None = None) -> Progress:
    """The run's live counters: the sum of its slices'."""
    now = now or timezone.now()
    counters: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    done = 0
    ends: list[datetime | None] = []
    for number, next_index, slice_counters, slice_failures, ops_end in run.slices.values_list(
        "number", "next_index", "counters", "failures", "operations_done_at"
    ):
        ends.append(ops_end)
        counters.update(slice_counters or {})
        failures.update(slice_failures or {})
        # Slice k owns k, k+n, k+2n…: it has committed ceil((next - k) / n) of them.
        if next_index > number:
            done += -(-(next_index - number) // run.slice_count)
    done = min(done, run.planned)
    pending = FollowUp.objects.filter(run=run, done_at__isnull=True).count()
    end = run.finished_at or now
    elapsed = (end - run.started_at).total_seconds() if run.started_at else 0.0
    created = counters.get("created", 0)
    # The rate of the traffic itself: until the last primary operation when
    # every slice is past it (follow-ups may drain for a while after).
    rate_end = max(e for e in ends if e) if ends and all(ends) else end
    rate_span = (rate_end - run.started_at).total_seconds() if run.started_at else 0.0
    return Progress(
        counters={name: counters.get(name, 0) for name in COUNTERS},
        failures=dict(failures.most_common()),
        done=done,
        planned=run.planned,
        follow_ups_pending=pending,
        elapsed=elapsed,
        actual_rate=round(created / rate_span, 2) if rate_span > 0 else 0.0,
    )


def run_summary(run: SimulationRun) -> dict[str, Any]:
    """Plain data for tables (command, dashboard)."""
    p = progress(run)
    return {"run": run, "progress": p}
