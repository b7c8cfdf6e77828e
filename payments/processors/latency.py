"""Simulated processor latency: a log-normal distribution fitted to a p50
and a p99 (real network latency is close to log-normal: a body near the
median, a long right tail). Seeded: the caller passes its `random.Random`.
"""

from __future__ import annotations

import math
import random

_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


def sample_ms(rng: random.Random, *, p50_ms: int, p99_ms: int, multiplier_pct: int = 100) -> int:
    """One latency in milliseconds (0 when p50 is 0)."""
    if p50_ms <= 0:
        return 0
    p99_ms = max(p99_ms, p50_ms)
    sigma = (math.log(p99_ms) - math.log(p50_ms)) / _Z99
    value = rng.lognormvariate(math.log(p50_ms), sigma) if sigma > 0 else float(p50_ms)
    return max(0, round(value * multiplier_pct / 100))
