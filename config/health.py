"""Dependency checks behind `/readyz`.

Each check returns its latency or raises; `/readyz` answers 503 naming every
dependency that failed. The checks read settings at call time, so the same
code serves embedded mode (SQLite, in-memory layer, filesystem broker) and
full mode (PostgreSQL, Redis).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from kombu import Connection

from config.celery import ensure_broker_folders

CHECK_TIMEOUT_SECONDS = 2.0


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def round_trip() -> None:
        import asyncio

        channel = await layer.new_channel("readyz.")
        token = uuid.uuid4().hex
        await asyncio.wait_for(
            layer.send(channel, {"type": "readyz", "token": token}), CHECK_TIMEOUT_SECONDS
        )
        message = await asyncio.wait_for(layer.receive(channel), CHECK_TIMEOUT_SECONDS)
        if message.get("token") != token:
            raise RuntimeError("channel layer returned another message")

    async_to_sync(round_trip)()


def check_broker() -> None:
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        ensure_broker_folders(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    with Connection(
        settings.CELERY_BROKER_URL,
        transport_options=dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS),
        connect_timeout=CHECK_TIMEOUT_SECONDS,
    ) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT_SECONDS)
        with conn.channel() as channel:
            # A passive declare proves the broker answers, not just the socket.
            channel.queue_declare("celery", passive=False, durable=True)


def check_outbox() -> dict[str, Any]:
    """Outbox lag: the backlog and the age of the oldest unpublished event.

    Unready past PAYLAB_OUTBOX_MAX_LAG_SECONDS (default 60 s): the relay
    normally publishes within ~100 ms and the sweep within 5 s, so a minute
    means no relay is running or the channel layer is down — events are
    safe but pages and webhooks are not being served. The backlog alone
    never fails the check: a burst may queue thousands for a second.
    """
    from django.db import DatabaseError

    from payments.services.outbox import outbox_lag

    try:
        lag = outbox_lag()
    except DatabaseError:
        # Not measurable; the database check names the failure.
        return {"backlog": None, "oldest_age_seconds": None, "skipped": "database unavailable"}
    if lag["oldest_age_seconds"] > settings.PAYLAB_OUTBOX_MAX_LAG_SECONDS:
        raise RuntimeError(
            f"oldest unpublished event is {lag['oldest_age_seconds']:.0f}s old "
            f"(backlog {lag['backlog']}; limit {settings.PAYLAB_OUTBOX_MAX_LAG_SECONDS:.0f}s)"
        )
    return lag


CHECKS: dict[str, Callable[[], dict[str, Any] | None]] = {
    "database": check_database,
    "channel_layer": check_channel_layer,
    "broker": check_broker,
    "outbox": check_outbox,
}


def readiness() -> tuple[bool, dict[str, Any]]:
    results: dict[str, Any] = {}
    healthy = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            details = check()
        except Exception as error:  # any failure means "not ready", named below
            healthy = False
            results[name] = {
                "status": "unavailable",
                "error": f"{type(error).__name__}: {str(error)[:200]}",
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        else:
            results[name] = {
                "status": "ok",
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                **(details or {}),
            }
    return healthy, results
