"""Crash safety with a real worker process, in full mode.

A Celery worker (with its beat, `-B`) runs against the test database and a
Redis server of its own — the processes and helpers of
`tests/payments/test_faults.py`. A run's slices go to that worker; the
test kills it with SIGKILL (its whole process group) mid-run and starts
another. The dead worker's uncommitted batch rolls back; the sweep (beat,
every second here) hands its slices on once their lease (2 s here) has
expired, and the new worker resumes them at the committed index.

Then: every operation `<run id>:<index>` made exactly one payment (none
lost, none twice), the run's counters agree with the rows, and `verify`
passes. Marked postgres and redis; about half a minute.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db.models import Count

from config.celery import app
from payments.models import Event, PaymentIntent, Refund
from payments.services import verify
from simulator import selectors, services, tasks
from simulator.models import RunStatus, SimulationRun, SimulationSlice
from tests.conftest import MerchantWithKey
from tests.payments.test_faults import Stack
from tests.processes import wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def stack() -> Iterator[Stack]:
    """Redis and a worker with beat; lease and sweep compressed to seconds."""
    with tempfile.TemporaryDirectory(prefix="paylab-sim-crash-") as var:
        running = Stack(Path(var))
        running.env["PAYLAB_SIMULATOR_LEASE_SECONDS"] = "2"
        running.env["PAYLAB_SIMULATOR_SWEEP_SECONDS"] = "1"
        running.env["PAYLAB_LOG_LEVEL"] = "ERROR"
        try:
            running.start("redis")
            running.start("worker")
            yield running
        finally:
            running.stop_all()


def _enqueue(run: SimulationRun, stack: Stack) -> None:
    """Queue the run's slices on the stack's broker (this process's Celery
    app is configured for the test's Redis, not the stack's)."""
    with app.connection_for_write(stack.env["REDIS_URL"]) as connection:
        for slice_id in run.slices.values_list("pk", flat=True):
            tasks.run_slice.apply_async((slice_id,), connection=connection)


def _committed(run: SimulationRun) -> int:
    return selectors.progress(run).done


def test_a_worker_killed_mid_run_neither_duplicates_nor_loses_an_operation(
    stack: Stack, merchant_a: MerchantWithKey
) -> None:
    # given a run of 2 slices with follow-ups (captures, refunds) queued for the worker
    run = services.simulation_run_create(
        merchant=merchant_a.merchant,
        scenario="steady",
        params={
            "rate": 25,
            "duration": 8,
            "slices": 2,
            "seed": 21,
            "outcomes": {"success": 85, "generic_decline": 10, "insufficient_funds": 5},
            "manual_capture_share": 0.3,
            "void_share": 0,
            "capture_delay": [0.5, 2],
            "refund_probability": 0.3,
            "refund_delay": [0.5, 2],
            "customer_pool": 3,
        },
        enqueue=False,
    )
    _enqueue(run, stack)
    wait_for(lambda: _committed(run) >= run.planned // 3, 120, "a third of the run")

    # when the worker is killed mid-run (SIGKILL, beat included) and another starts
    stack.kill("worker")
    at_kill = _committed(run)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert at_kill < run.planned
    assert SimulationSlice.objects.filter(run=run, status=SimulationSlice.Status.RUNNING).exists()
    stack.start("worker")
    wait_for(
        lambda: SimulationRun.objects.get(pk=run.pk).status not in (RunStatus.RUNNING,),
        180,
        "the run to finish",
    )

    # then the run completed, every operation made exactly one payment …
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    payments = PaymentIntent.objects.filter(metadata__simulation_run=run.id)
    per_op = Counter(p.metadata["simulation_op"] for p in payments.only("metadata"))
    assert sorted(int(op) for op in per_op) == list(range(run.planned))
    assert set(per_op.values()) == {1}
    created = (
        Event.objects.filter(type="payment_intent.created", idempotency_key__startswith=run.id)
        .values("idempotency_key")
        .annotate(n=Count("id"))
    )
    assert {row["idempotency_key"] for row in created} == {
        f"{run.id}:{i}" for i in range(run.planned)
    }
    assert {row["n"] for row in created} == {1}
    # … the counters agree with the rows …
    progress = selectors.progress(run)
    counters = progress.counters
    assert progress.follow_ups_pending == 0
    assert counters["created"] == run.planned
    assert counters["errors"] == 0 and counters["replayed"] == 0
    assert counters["failed"] == payments.filter(status="requires_payment_method").count()
    at_creation = ("succeeded", "failed", "requires_capture", "requires_action", "processing")
    assert sum(counters[name] for name in at_creation) == counters["created"]
    assert (
        counters["captured"] == payments.filter(capture_method="manual", status="succeeded").count()
    )
    assert counters["refunded"] == Refund.objects.filter(payment_intent__in=payments).count()
    assert counters["refunded"] > 0 and counters["captured"] > 0
    # … and every invariant holds
    assert verify.run().violations == []
