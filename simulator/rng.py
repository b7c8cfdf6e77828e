"""Per-thread processor randomness, so a run stays deterministic with
several slices in one process.

The processors draw their random faults, latencies and volume splits from
one module-level `random.Random` (`payments.processing.rng`). The simulator
reseeds it before each operation — (seed, index, kind) decides the draws —
which is deterministic as long as one thread draws at a time. With several
slices as threads (`simulate --wait`, `run_inline`) the draws of one slice's
operation could interleave with another's. `install()` puts a
`ThreadLocalRandom` in its place once: the same `random.Random` interface,
but each thread seeds and draws from its own generator, so an operation's
draws depend on its own seed alone, whichever threads run beside it.

It changes nothing for single-threaded callers (tests that seed
`processing.rng` and then draw in the same thread see the same numbers).
"""

from __future__ import annotations

import random
import threading
from typing import Any

_install_lock = threading.Lock()


class ThreadLocalRandom(random.Random):
    """A `random.Random` whose state is per thread.

    Overrides the primitives every other method is built on — `random()`,
    `getrandbits()` — plus the state methods and `gauss()` (the one method
    keeping state on the instance, `gauss_next`)."""

    def __init__(self, x: Any = None) -> None:
        self._local = threading.local()
        super().__init__(x)

    def _generator(self) -> random.Random:
        local = self.__dict__.get("_local")
        if local is None:  # during random.Random.__init__
            local = self._local = threading.local()
        generator: random.Random | None = getattr(local, "generator", None)
        if generator is None:
            generator = local.generator = random.Random()
        return generator

    def seed(self, a: Any = None, version: int = 2) -> None:  # type: ignore[override]
        self._generator().seed(a, version)

    def random(self) -> float:
        return self._generator().random()

    def getrandbits(self, k: int) -> int:
        return self._generator().getrandbits(k)

    def gauss(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        return self._generator().gauss(mu, sigma)

    def getstate(self) -> tuple[Any, ...]:
        return self._generator().getstate()

    def setstate(self, state: tuple[Any, ...]) -> None:
        self._generator().setstate(state)


def install() -> None:
    """Make `payments.processing.rng` per thread (once per process; call it
    before starting the threads that draw)."""
    from payments import processing

    with _install_lock:
        if not isinstance(getattr(processing, "rng", None), ThreadLocalRandom):
            processing.rng = ThreadLocalRandom()


def seed_operation(seed: int, index: int, kind: str = "") -> None:
    """Seed this thread's processor draws for one operation: its outcome then
    depends on (seed, index, kind) alone."""
    from payments import processing

    install()
    processing.rng.seed(f"paylab-sim-processor:{seed}:{index}:{kind}")
