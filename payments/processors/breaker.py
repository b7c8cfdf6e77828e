"""A circuit breaker per processor, as pure state transitions.

closed → (N failures within the window) → open → (cool-off elapsed) →
half_open → (M successes) → closed, or (one failure) → open again. While
half-open only a few probes go through at once. An operator may force a
breaker open; a reset closes it and forgets its failures.

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

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "failures": list(self.failures),
            "opened_at": self.opened_at,
            "probes_in_flight": self.probes_in_flight,
            "successes": self.successes,
            "forced_open": self.forced_open,
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
        )


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
    state: BreakerState, *, success: bool, now: float, config: BreakerConfig
) -> Change | None:
    """Account for the outcome of one request that `allow` let through."""
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
    horizon = now - config.window_seconds
    state.failures = [t for t in state.failures if t > horizon] + [now]
    if len(state.failures) >= config.failure_threshold:
        state.opened_at = now
        return _move(
            state, OPEN, f"{len(state.failures)} failures within {config.window_seconds:g}s"
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
    return change
