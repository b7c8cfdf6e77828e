"""A circuit breaker per processor, as pure state transitions.

closed → (N failures within the window, and at least R % of the
window's attempts) → open → (cool-off elapsed) → half_open → (M
successes) → closed, or (one failure) → open again. While half-open only a
few probes go through at once. An operator may force a breaker open; a
reset closes it and forgets its failures.

The failure rate is what keeps a healthy processor in use at volume: at
500 payments/s a processor failing 0.5 % of its requests fails 5 times in
2 s, so a count alone (5 in 60 s) would open every breaker of every
processor with any fault rate at all. Attempts are counted in one-second
buckets over the window; a caller that does not save successes one by
one hands them over with the next failure (`record(successes=…)`).

The clock is an argument (`now`, seconds), so tests drive time; the state is
a plain dataclass the caller loads and saves under a row lock, so every
process shares one breaker per processor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    # The share of the window's attempts that must have failed (0: the count alone).
    failure_rate: float = 0.1
    window_seconds: float = 60.0
    open_seconds: float = 30.0
    half_open_probes: int = 1
    close_after_successes: int = 2


@dataclass
class BreakerState:
    state: str = CLOSED
    failures: list[float] = field(default_factory=list)
    opened_at: float | None = None
    probes_in_flight: int = 0
    successes: int = 0
    forced_open: bool = False
    # Attempts (successes and failures) per whole second, within the window.
    attempts: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "failures": list(self.failures),
            "opened_at": self.opened_at,
            "probes_in_flight": self.probes_in_flight,
            "successes": self.successes,
            "forced_open": self.forced_open,
            "attempts": {str(second): n for second, n in self.attempts.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> BreakerState:
        data = data or {}
        return cls(
            state=str(data.get("state", CLOSED)),
            failures=[float(x) for x in data.get("failures", []) or []],  # type: ignore[attr-defined]
            opened_at=float(data["opened_at"]) if data.get("opened_at") is not None else None,  # type: ignore[arg-type]
            probes_in_flight=int(data.get("probes_in_flight", 0) or 0),  # type: ignore[call-overload]
            successes=int(data.get("successes", 0) or 0),  # type: ignore[call-overload]
            forced_open=bool(data.get("forced_open", False)),
            attempts={
                int(second): int(n)
                for second, n in (data.get("attempts") or {}).items()  # type: ignore[attr-defined]
            },
        )

    def count(self, second: int, n: int = 1) -> None:
        self.attempts[second] = self.attempts.get(second, 0) + n

    def recent_attempts(self, now: float, window_seconds: float) -> int:
        horizon = now - window_seconds
        return sum(n for second, n in self.attempts.items() if second + 1 > horizon)


@dataclass(frozen=True)
class Change:
    """A state change, to be recorded as a breaker event."""

    from_state: str
    to_state: str
    reason: str


def _move(state: BreakerState, to: str, reason: str) -> Change:
    change = Change(state.state, to, reason)
    state.state = to
    return change


def peek(state: BreakerState, now: float, config: BreakerConfig) -> str:
    """The state as routing should see it, without claiming a probe."""
    if state.forced_open:
        return OPEN
    if (
        state.state == OPEN
        and state.opened_at is not None
        and now - state.opened_at >= config.open_seconds
    ):
        return HALF_OPEN
    return state.state


def allow(state: BreakerState, now: float, config: BreakerConfig) -> tuple[bool, Change | None]:
    """May a request go to this processor now? Claims a probe when half-open."""
    if state.forced_open:
        return False, None
    change = None
    if state.state == OPEN:
        if state.opened_at is not None and now - state.opened_at >= config.open_seconds:
            change = _move(state, HALF_OPEN, f"cool-off of {config.open_seconds:g}s elapsed")
            state.probes_in_flight = 0
            state.successes = 0
        else:
            return False, None
    if state.state == HALF_OPEN:
        if state.probes_in_flight >= config.half_open_probes:
            return False, change
        state.probes_in_flight += 1
    return True, change


def record(
    state: BreakerState,
    *,
    success: bool,
    now: float,
    config: BreakerConfig,
    successes: dict[int, int] | None = None,
) -> Change | None:
    """Account for the outcome of one request that `allow` let through, and
    for `successes` (per second) seen since the caller last reported."""
    horizon = now - config.window_seconds
    for second, n in (successes or {}).items():
        if second + 1 > horizon:
            state.count(second, n)
    state.attempts = {k: v for k, v in state.attempts.items() if k + 1 > horizon}
    state.count(int(now))
    if state.state == HALF_OPEN:
        state.probes_in_flight = max(0, state.probes_in_flight - 1)
        if not success:
            state.opened_at = now
            state.successes = 0
            return _move(state, OPEN, "a half-open probe failed")
        state.successes += 1
        if state.successes >= config.close_after_successes:
            state.failures = []
            state.successes = 0
            return _move(state, CLOSED, f"{config.close_after_successes} probes succeeded")
        return None
    if success or state.state == OPEN:
        return None
    state.failures = [t for t in state.failures if t > horizon] + [now]
    failures = len(state.failures)
    attempts = max(state.recent_attempts(now, config.window_seconds), failures)
    if failures >= config.failure_threshold and failures >= config.failure_rate * attempts:
        state.opened_at = now
        return _move(
            state,
            OPEN,
            f"{failures} failures in {attempts} attempts within {config.window_seconds:g}s",
        )
    return None


def force_open(state: BreakerState, now: float) -> Change:
    state.forced_open = True
    state.opened_at = now
    return _move(state, OPEN, "forced open by an operator")


def reset(state: BreakerState) -> Change:
    change = Change(state.state, CLOSED, "reset by an operator")
    state.state = CLOSED
    state.failures = []
    state.opened_at = None
    state.probes_in_flight = 0
    state.successes = 0
    state.forced_open = False
    state.attempts = {}
    return change
