"""The per-thread processor generator: interleaved threads draw what each
would draw alone."""

from __future__ import annotations

import random
import threading

from simulator.rng import ThreadLocalRandom


def _draws(rng: random.Random, seed: str, barrier: threading.Barrier | None) -> list[float]:
    rng.seed(seed)
    out = []
    for _ in range(200):
        if barrier is not None:
            barrier.wait()  # lock-step: every draw of one thread beside one of the other
        out.append(rng.random())
        out.append(rng.lognormvariate(3, 0.5))
        out.append(float(rng.randrange(10_000)))
        out.append(rng.gauss(0, 1))
    return out


def test_two_threads_interleaving_draw_exactly_what_each_draws_alone() -> None:
    # given what each seed draws from a plain generator, alone
    alone = {seed: _draws(random.Random(), seed, None) for seed in ("op:1", "op:2")}
    # when two threads seed one shared ThreadLocalRandom and draw in lock-step
    shared = ThreadLocalRandom()
    barrier = threading.Barrier(2)
    got: dict[str, list[float]] = {}

    def work(seed: str) -> None:
        got[seed] = _draws(shared, seed, barrier)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in alone]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then neither saw the other's draws
    assert got == alone


def test_a_plain_shared_generator_would_interleave() -> None:
    # the failure the per-thread generator prevents (so the test above means something)
    shared = random.Random()
    barrier = threading.Barrier(2)
    got: dict[str, list[float]] = {}

    def work(seed: str) -> None:
        got[seed] = _draws(shared, seed, barrier)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in ("op:1", "op:2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert got["op:1"] != _draws(random.Random(), "op:1", None)
