"""Runs executed in this process through the same code a worker runs:
pacing in real time, stopping, determinism, every scenario, verify."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest

from config.errors import InvalidRequestError
from payments.models import IdempotencyKey, PaymentIntent
from payments.services import processors, verify
from simulator import scenarios, selectors, services
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

    # then 100 payments, spread over the 5 s, none made before its time
    payments = _payments(run.id)
    assert len(payments) == run.planned == 100
    created = sorted(p.created for p in payments)
    span = (created[-1] - created[0]).total_seconds()
    # Spread over the run: paced, not made at once. (No upper bound: on a
    # loaded machine the run may fall behind, which is throughput — bench/.)
    assert span >= 4.0
    # Paced, not bursty: operation i is never made before start + i/20 s (a
    # lower bound the load of the machine cannot break).
    assert run.started_at is not None
    schedule = scenarios.Schedule(scenarios.get("steady").segments(run.params))
    early = [
        p.metadata["simulation_op"]
        for p in payments
        if p.created
        < run.started_at + timedelta(seconds=schedule.offset(int(p.metadata["simulation_op"])))
    ]
    assert early == []
    assert run.status == RunStatus.COMPLETED
    assert selectors.progress(run).counters["created"] == len(payments)


def test_a_stop_takes_effect_within_a_second(merchant_a: MerchantWithKey) -> None:
    # given a long run at 20/s, on the loop's own clock (the `clock` and
    # `sleep` seams: time passes when the loop sleeps, so the machine's load
    # cannot stretch it and the test asserts no wall-clock bound)
    run = services.simulation_run_create(
        merchant=merchant_a.merchant,
        scenario="steady",
        params={"rate": 20, "duration": 60, "seed": 2, "refund_probability": 0},
        enqueue=False,
    )
    (slice_id,) = SimulationSlice.objects.filter(run=run).values_list("pk", flat=True)
    now: list[float] = []
    stop_at: list[float] = []

    def clock() -> float:
        # Starts at the real time of its first reading — after the run has
        # started — then moves only when the loop sleeps.
        if not now:
            now.extend([time.time(), time.time()])
        # The operator presses stop 1.5 s in (from the loop's own thread: the
        # clock is read on every turn of the loop, whether it sleeps or not).
        if not stop_at and now[0] - now[1] > 1.5:
            stop_at.append(now[0])
            services.simulation_run_stop(run_id=run.id)
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    # when the slice runs and is stopped
    services.SliceRunner(slice_id, clock=clock, sleep=sleep).run()

    # then it returned within a second of the stop (on its clock) …
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert now[0] - stop_at[0] < 1.0
    # … and made nothing due a second or more after it
    assert run.started_at is not None
    stopped_after = stop_at[0] - run.started_at.timestamp()
    made = sorted(int(p.metadata["simulation_op"]) for p in _payments(run.id))
    assert made == list(range(len(made)))
    assert made[-1] / 20 < stopped_after + 1.0
    assert 25 <= len(made) <= 35  # 1.5 s at 20/s


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


def _routed(run_id: str) -> list[tuple[object, ...]]:
    """What the processors' random draws decided: the route and the latency."""
    routed = []
    for p in _payments(run_id):
        paylab = dict(p.latest_charge.outcome.get("paylab") or {}) if p.latest_charge else {}
        routed.append((p.metadata["simulation_op"], json.dumps(paylab, sort_keys=True)))
    return routed


# Threads need their own connections to see the fixtures (committed, so a
# transactional test) and a database that several connections may write —
# not SQLite's shared in-memory test database ("table is locked"). The
# per-thread generator itself is tested without a database in test_rng.py.
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_slices_as_threads_are_as_deterministic_as_one(
    merchant_a: MerchantWithKey, settings: Any
) -> None:
    # given processors whose own randomness matters — a volume split and soft
    # declines — and a run in 2 slices executed as 2 threads of this process
    # (`simulate --wait`): the processors' draws of the two must not interleave
    settings.PAYLAB_PROCESSOR_FAULTS = True
    quiet = {"timeout_rate_bp": 0, "unavailable_rate_bp": 0}
    processors.processors_import(
        document={
            "processors": [
                {"name": "north", **quiet, "soft_decline_rate_bp": 2_000},
                {"name": "south", **quiet, "soft_decline_rate_bp": 500},
            ],
            "rules": [
                {
                    "name": "split",
                    "position": 1,
                    "targets": [
                        {"processor": "north", "weight": 50},
                        {"processor": "south", "weight": 50},
                    ],
                }
            ],
        }
    )
    params = {
        "rate": 40,
        "duration": 1.5,
        "slices": 2,
        "manual_capture_share": 0.3,
        "refund_probability": 0.3,
        "outcomes": {"success": 80, "generic_decline": 10, "processing_error": 10},
    }

    first = run_now(merchant_a.merchant, "steady", seed=42, **params)
    second = run_now(merchant_a.merchant, "steady", seed=42, **params)

    assert first.slice_count == 2
    assert len(_outcomes(first.id)) == 60
    assert _outcomes(first.id) == _outcomes(second.id)
    assert _routed(first.id) == _routed(second.id)
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


def test_a_run_mixes_upi_and_wallet_payments_through_payment_method_data(
    merchant_a: MerchantWithKey,
) -> None:
    run = run_now(
        merchant_a.merchant,
        "steady",
        rate=30,
        duration=2,
        seed=3,
        methods={"upi": 1, "wallet": 1},
        refund_probability=0,
    )

    payments = _payments(run.id)
    methods = {p.payment_method_types[0] for p in payments}
    assert methods == {"upi", "wallet"}
    upi = [p for p in payments if p.payment_method_types == ["upi"]]
    wallet = [p for p in payments if p.payment_method_types == ["wallet"]]
    # UPI answers `processing` (it settles later); wallets succeed at once.
    assert {p.status for p in upi} == {"processing"}
    assert {p.currency for p in upi} == {"inr"}
    assert all(p.status in ("succeeded", "requires_capture") for p in wallet)
    counters = selectors.progress(run).counters
    assert counters["processing"] == len(upi)
    assert counters["succeeded"] + counters["requires_capture"] == len(wallet)
    _assert_verify_passes()


def test_an_unknown_method_in_the_mix_is_refused(merchant_a: MerchantWithKey) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        services.simulation_run_create(
            merchant=merchant_a.merchant,
            scenario="steady",
            params={"methods": {"card": 1, "sepa": 1}},
            enqueue=False,
        )

    assert refused.value.param == "methods[sepa]"


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
