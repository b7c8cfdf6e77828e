"""The traffic plan and the schedule, without a database."""

from __future__ import annotations

import pytest

from simulator import scenarios


def _params(name: str = "steady", **overrides: object) -> dict[str, object]:
    params = scenarios.get(name).params({"seed": 7, **overrides})
    params["scenario"] = name
    return params


def test_the_same_seed_plans_the_same_operations_and_another_seed_others() -> None:
    one = [scenarios.plan_operation(_params(), i, at=i / 20, slices=1) for i in range(200)]
    again = [scenarios.plan_operation(_params(), i, at=i / 20, slices=1) for i in range(200)]
    other = [scenarios.plan_operation(_params(seed=8), i, at=i / 20, slices=1) for i in range(200)]

    assert one == again
    assert one != other


def test_a_steady_schedule_is_evenly_paced() -> None:
    schedule = scenarios.Schedule(scenarios.get("steady").segments(_params(rate=20, duration=5)))

    assert schedule.total == 100
    gaps = {round(schedule.offset(i + 1) - schedule.offset(i), 9) for i in range(99)}
    assert gaps == {0.05}


def test_peak_ramps_to_ten_times_the_base_rate() -> None:
    segments = scenarios.get("peak").segments(_params("peak", rate=10, duration=100))

    rates = [rate for _, rate in segments]
    assert min(rates) == 10 and max(rates) == 100
    assert sum(seconds for seconds, _ in segments) == pytest.approx(100)


def test_a_decline_storm_declines_the_issuers_payments_in_its_window_only() -> None:
    params = _params("decline_storm", duration=100, storm_at=40, storm_seconds=20)
    inside = [scenarios.plan_operation(params, i, at=50, slices=1) for i in range(400)]
    before = [scenarios.plan_operation(params, i, at=10, slices=1) for i in range(400)]

    def declined_visa(ops: list[scenarios.Operation]) -> float:
        visa = [op for op in ops if op.card in ("pm_card_visa",) or "Declined" in op.card]
        return sum("Declined" in op.card for op in visa) / len(visa)

    assert declined_visa(inside) > 0.5
    assert declined_visa(before) < 0.2


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_every_scenario_is_documented(name: str) -> None:
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "simulator.md").read_text()
    assert f"`{name}`" in docs


def test_the_method_mix_draws_from_its_own_stream() -> None:
    # Card-only traffic plans the same cards, amounts and outcomes whatever
    # the method weights of the other methods would have been.
    cards = [
        scenarios.plan_operation(_params(methods={"card": 1}), i, at=0, slices=1)
        for i in range(300)
    ]
    mixed = [
        scenarios.plan_operation(
            _params(methods={"card": 90, "upi": 5, "wallet": 5}), i, at=0, slices=1
        )
        for i in range(300)
    ]

    same = [(a, b) for a, b in zip(cards, mixed, strict=True) if b.method == "card"]
    assert 240 < len(same) < 300
    assert all(a == b for a, b in same)


def test_upi_operations_are_inr_by_test_vpa_and_never_manual() -> None:
    params = _params(methods={"upi": 1}, manual_capture_share=1.0, refund_probability=1.0)
    ops = [scenarios.plan_operation(params, i, at=0, slices=1) for i in range(200)]

    assert {op.currency for op in ops} == {"inr"}
    assert {op.method for op in ops} == {"upi"}
    assert not any(op.manual for op in ops)
    assert {(op.outcome, op.card) for op in ops} == {
        ("success", scenarios.UPI_SUCCESS_VPA),
        ("upi_failure", scenarios.UPI_FAILURE_VPA),
    }
    # A refund waits for the settlement.
    refunds = [f for op in ops for f in op.follow_ups if f.kind == "refund"]
    assert refunds and min(f.delay for f in refunds) >= scenarios.UPI_SETTLE_SECONDS


def test_wallet_operations_succeed() -> None:
    params = _params(methods={"wallet": 1})
    ops = [scenarios.plan_operation(params, i, at=0, slices=1) for i in range(100)]

    assert {(op.method, op.outcome, op.card) for op in ops} == {
        ("wallet", "success", "paylab_wallet")
    }
