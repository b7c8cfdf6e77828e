"""Runs executed in this process through the same code a worker runs:
pacing in real time, stopping, determinism, every scenario, verify."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from payments.models import IdempotencyKey, PaymentIntent
from payments.services import verify
from simulator import selectors, services
from simulator.models import RunStatus, SimulationSlice
from tests.conftest import MerchantWithKey
from tests.simulator.conftest import FAST, run_now

pytestmark = pytest.mark.django_db


def _payments(run_id: str) -> list[PaymentIntent]:
    return sorted(
        PaymentIntent.objects.filter(metadata__simulation_run=run_id),
        key=lambda p: int(p.metadata["simulation_op"]),
    )


def _assert_verify_passes() -> None:
    report = verify.run()
    assert report.violations == []


def test_a_20_per_second_run_for_5_seconds_makes_100_paced_payments(
    merchant_a: MerchantWithKey,
) -> None:
    # when a 20/s run of 5 s executes in real time (no follow-ups to wait for)
    run = run_now(
        merchant_a.merchant,
        "steady",
        rate=20,
        duration=5,
        seed=1,
        manual_capture_share=0,
        refund_probability=0,
        outcomes={"success": 1},
    )

    # then about 100 payments, spread over the 5 s, not in bursts
    payments = _payments(run.id)
    assert 90 <= len(payments) <= 110
    created = sorted(p.created for p in payments)
    span = (created[-1] - created[0]).total_seconds()
    # Spread over the run: paced, not made at once. (No upper bound: on a
    # loaded machine the run may fall behind, which is throughput — bench/.)
    assert span >= 4.0
    busiest = max(
        sum(1 for c in created if start <= c < start + timedelta(seconds=1)) for start in created
    )
    assert busiest <= 30
    assert run.status == RunStatus.COMPLETED
    assert selectors.progress(run).counters["created"] == len(payments)


def test_a_stop_takes_effect_within_a_second(merchant_a: MerchantWithKey) -> None:
    # given a long run at 20/s
    run = services.simulation_run_create(
        merchant=merchant_a.merchant,
        scenario="steady",
        params={"rate": 20, "duration": 60, "seed": 2, "refund_probability": 0},
        enqueue=False,
    )
    (slice_id,) = SimulationSlice.objects.filter(run=run).values_list("pk", flat=True)
    stop_at: list[float] = []

    def clock() -> float:
        # The operator presses stop 1.5 s in (from the loop's own thread: the
        # clock is read on every turn of the loop, whether it sleeps or not).
        now = time.time()
        if not stop_at and now - started > 1.5:
            stop_at.append(now)
            services.simulation_run_stop(run_id=run.id)
        return now

    started = time.time()
    # when the slice runs and is stopped
    services.SliceRunner(slice_id, clock=clock).run()
    ended = time.time()

    # then it returned within a second of the stop, and made nothing after it
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert ended - stop_at[0] < 1.0
    last = max(p.created for p in _payments(run.id))
    assert last.timestamp() < stop_at[0] + 1.0
    assert 10 <= len(_payments(run.id)) <= 60


def _outcomes(run_id: str) -> list[tuple[object, ...]]:
    return [
        (
            p.metadata["simulation_op"],
            p.amount,
            p.currency,
            p.status,
            p.capture_method,
            (p.last_payment_error or {}).get("decline_code"),
            p.amount_refunded,
        )
        for p in _payments(run_id)
    ]


def test_one_seed_gives_the_same_outcomes_and_another_seed_others(
    merchant_a: MerchantWithKey,
) -> None:
    params = {"rate": 40, "duration": 1.5, "manual_capture_share": 0.3, "refund_probability": 0.3}

    first = run_now(merchant_a.merchant, "steady", seed=42, **params)
    second = run_now(merchant_a.merchant, "steady", seed=42, **params)
    other = run_now(merchant_a.merchant, "steady", seed=43, **params)

    assert _outcomes(first.id) == _outcomes(second.id)
    assert len(_outcomes(first.id)) == 60
    assert _outcomes(first.id) != _outcomes(other.id)
    assert selectors.progress(first).counters == selectors.progress(second).counters


@pytest.mark.parametrize(
    "scenario",
    [
        "steady",
        "peak",
        "decline_storm",
        "processor_outage",
        "brownout",
        "three_ds_eu",
        "refund_wave",
        "webhook_outage",
        "duplicate_storm",
        "fraud_dispute_wave",
    ],
)
def test_every_scenario_runs_and_leaves_verify_passing(
    merchant_a: MerchantWithKey, scenario: str
) -> None:
    run = run_now(merchant_a.merchant, scenario, rate=15, duration=2, seed=5)

    assert run.status == RunStatus.COMPLETED, run.error
    progress = selectors.progress(run)
    assert progress.counters["errors"] == 0
    assert progress.follow_ups_pending == 0
    made = len(_payments(run.id))
    assert made == progress.counters["created"] > 0
    _assert_verify_passes()


def test_duplicate_storm_replays_instead_of_creating_twice(merchant_a: MerchantWithKey) -> None:
    run = run_now(merchant_a.merchant, "duplicate_storm", rate=30, duration=2, seed=9)

    counters = selectors.progress(run).counters
    assert counters["replayed"] > 0
    assert counters["created"] + counters["replayed"] + counters["rejected"] == run.planned
    keys = IdempotencyKey.objects.filter(key__startswith=run.id + ":")
    assert keys.filter(path="/v1/payment_intents").count() == counters["created"]
    _assert_verify_passes()


def test_follow_ups_capture_refund_and_answer_challenges(merchant_a: MerchantWithKey) -> None:
    run = run_now(
        merchant_a.merchant,
        "three_ds_eu",
        rate=30,
        duration=2,
        seed=11,
        manual_capture_share=0.3,
        refund_probability=0.5,
        **{k: v for k, v in FAST.items() if k != "customer_pool"},
    )

    counters = selectors.progress(run).counters
    assert counters["captured"] > 0
    assert counters["refunded"] > 0
    assert counters["three_ds_completed"] > 0
    _assert_verify_passes()


def test_an_unknown_parameter_or_scenario_is_refused(merchant_a: MerchantWithKey) -> None:
    from config.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError) as unknown:
        services.simulation_run_create(
            merchant=merchant_a.merchant, scenario="steady", params={"speed": 3}, enqueue=False
        )
    assert unknown.value.code == "parameter_unknown"
    with pytest.raises(InvalidRequestError) as missing:
        services.simulation_run_create(merchant=merchant_a.merchant, scenario="nope", enqueue=False)
    assert missing.value.status == 404
