"""The circuit breaker's transitions, driven by an injected clock."""

import pytest

from payments.processors.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerConfig,
    BreakerState,
    allow,
    force_open,
    peek,
    record,
    reset,
)

CONFIG = BreakerConfig(
    failure_threshold=5,
    window_seconds=60,
    open_seconds=30,
    half_open_probes=1,
    close_after_successes=2,
)


def _fail(state: BreakerState, times: list[float]) -> None:
    for t in times:
        assert allow(state, t, CONFIG)[0]
        record(state, success=False, now=t, config=CONFIG)


def test_opens_after_five_failures_within_the_window():
    state = BreakerState()
    _fail(state, [0, 1, 2, 3])
    assert state.state == CLOSED
    _fail(state, [4])
    assert state.state == OPEN
    assert allow(state, 5, CONFIG) == (False, None)


def test_failures_older_than_the_window_do_not_count():
    state = BreakerState()
    _fail(state, [0, 10, 20, 30])
    _fail(state, [70])  # the first two are outside 60 s by now
    assert state.state == CLOSED


def test_successes_do_not_open_and_do_not_hide_recent_failures():
    state = BreakerState()
    _fail(state, [0, 1])
    record(state, success=True, now=2, config=CONFIG)
    _fail(state, [3, 4, 5])
    assert state.state == OPEN


def test_half_open_after_the_cool_off_lets_one_probe_through():
    # Given an open breaker
    state = BreakerState()
    _fail(state, [0, 1, 2, 3, 4])
    # When the cool-off has not elapsed, nothing goes through
    assert peek(state, 33, CONFIG) == OPEN
    assert allow(state, 33, CONFIG)[0] is False
    # Then after 30 s one probe goes through, a second waits
    allowed, change = allow(state, 34, CONFIG)
    assert allowed and change is not None and change.to_state == HALF_OPEN
    assert allow(state, 34.1, CONFIG)[0] is False


def test_two_successful_probes_close_it():
    state = BreakerState()
    _fail(state, [0, 1, 2, 3, 4])
    assert allow(state, 40, CONFIG)[0]
    assert record(state, success=True, now=40.1, config=CONFIG) is None
    assert allow(state, 41, CONFIG)[0]
    change = record(state, success=True, now=41.1, config=CONFIG)
    assert change is not None and change.to_state == CLOSED
    assert state.failures == []


def test_a_failed_probe_opens_it_again_for_a_new_cool_off():
    state = BreakerState()
    _fail(state, [0, 1, 2, 3, 4])
    assert allow(state, 40, CONFIG)[0]
    change = record(state, success=False, now=40.5, config=CONFIG)
    assert change is not None and change.to_state == OPEN
    assert allow(state, 60, CONFIG)[0] is False
    assert allow(state, 71, CONFIG)[0] is True


@pytest.mark.parametrize("now", [0, 100, 10_000])
def test_forced_open_stays_open_until_reset(now):
    state = BreakerState()
    force_open(state, now=0)
    assert allow(state, now, CONFIG)[0] is False
    assert peek(state, now, CONFIG) == OPEN
    reset(state)
    assert allow(state, now, CONFIG)[0] is True
    assert state.state == CLOSED


def test_state_round_trips_through_a_dict():
    state = BreakerState()
    _fail(state, [0, 1, 2, 3, 4])
    assert BreakerState.from_dict(state.as_dict()) == state


def _succeed(state: BreakerState, times: list[float], config: BreakerConfig = CONFIG) -> None:
    for t in times:
        assert allow(state, t, config)[0]
        record(state, success=True, now=t, config=config)


def test_five_failures_among_many_successes_do_not_open_it():
    # Given a processor answering 10 requests a second, 2 % of them failing
    state = BreakerState()
    _succeed(state, [i / 10 for i in range(245)])
    # When 5 failures come within the window (5 of 250 attempts, under 10 %)
    _fail(state, [25.0, 25.1, 25.2, 25.3, 25.4])
    # Then it stays closed: a healthy processor at volume stays in use
    assert state.state == CLOSED


def test_failures_at_the_rate_open_it_even_among_successes():
    state = BreakerState()
    _succeed(state, [i / 10 for i in range(40)])
    # 5 failures of 45 attempts: 11 %, over 10 %
    _fail(state, [4.0, 4.1, 4.2, 4.3, 4.4])
    assert state.state == OPEN


def test_successes_handed_over_with_a_failure_count_as_attempts():
    # Given a caller that saved no successes, handing 1,000 over with its failures
    state = BreakerState()
    for i, t in enumerate([10.0, 10.1, 10.2, 10.3, 10.4]):
        record(state, success=False, now=t, config=CONFIG, successes={9: 1_000} if i == 0 else None)
    # Then the failures are 5 of 1,005 attempts: still closed
    assert state.state == CLOSED
    assert state.recent_attempts(10.4, CONFIG.window_seconds) == 1_005


def test_attempts_older_than_the_window_do_not_dilute_new_failures():
    state = BreakerState()
    _succeed(state, [i / 100 for i in range(1_000)])  # 1,000 successes in the first 10 s
    _fail(state, [100, 101, 102, 103, 104])  # long after: only the failures are in the window
    assert state.state == OPEN


def test_a_zero_failure_rate_opens_on_the_count_alone():
    config = BreakerConfig(failure_threshold=5, failure_rate=0.0)
    state = BreakerState()
    _succeed(state, [i / 10 for i in range(500)], config)
    for t in [50.0, 50.1, 50.2, 50.3, 50.4]:
        record(state, success=False, now=t, config=config)
    assert state.state == OPEN
