"""Runs made through the simulator's services, executed in this process."""

from __future__ import annotations

from typing import Any

from accounts.models import Merchant
from simulator import services
from simulator.models import SimulationRun

FAST = {
    "capture_delay": [0.1, 0.3],
    "refund_delay": [0.1, 0.4],
    "three_ds_delay": [0.05, 0.2],
    "dispute_close_delay": [0.1, 0.3],
    "customer_pool": 3,
}


def run_now(merchant: Merchant, scenario: str, **params: Any) -> SimulationRun:
    run = services.simulation_run_create(
        merchant=merchant, scenario=scenario, params={**FAST, **params}, enqueue=False
    )
    services.run_inline(run.id)
    run.refresh_from_db()
    return run
