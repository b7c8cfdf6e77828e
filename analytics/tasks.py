"""Celery tasks of analytics: interfaces only (STYLE 12)."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from analytics import services


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def project_rollups() -> int:
    """Run every second by beat: count what the relays published since."""
    return services.rollups_catch_up()


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def prune_rollups() -> int:
    return services.rollups_prune()
