"""Celery tasks of the simulator: interfaces only (STYLE 12).

`run_slice` is long-running: it paces its slice of the run for the run's
duration. It is idempotent by its lease: a redelivered message for a slice
another worker holds, or that is finished, returns at once; one whose
worker died resumes at the last committed operation.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from simulator import services


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def run_slice(slice_id: int) -> str:
    return services.slice_execute(slice_id=slice_id)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def sweep_runs() -> int:
    """The safety net: slices of dead workers are handed on after their lease expires."""
    return len(services.runs_sweep())
