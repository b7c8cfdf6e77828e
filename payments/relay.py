"""Where relays run: a blocking loop for `manage.py relay` (full mode) and
an asyncio task inside daphne (embedded mode). Both call
`payments.services.outbox.outbox_publish`; see its module for why there are
two and how they stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from payments.services import outbox

log = logging.getLogger(__name__)


def _publish_round(relay: str, *, keep_connection: bool = False) -> int:
    """Publish until the outbox is empty (one batch at a time).

    The connection goes back (to the pool) after the round, unless
    `keep_connection`: `manage.py relay`'s one thread keeps it between
    rounds (a round per nudge, up to hundreds a second under load: handing
    the connection back and taking it again each time is a cost with no
    use), and hands it back only after a failure (a broken connection is
    then replaced)."""
    total = 0
    failed = True
    try:
        while True:
            published = outbox.outbox_publish(relay=relay).count
            total += published
            if published < settings.PAYLAB_RELAY_BATCH:
                failed = False
                return total
    finally:
        if failed or not keep_connection:
            close_old_connections()


# --- Full mode: `manage.py relay` ---------------------------------------------------


def run_forever(
    *,
    poll_seconds: float = 1.0,
    stop: threading.Event | None = None,
    linger_seconds: float = 0.0,
) -> None:
    """Publish whenever nudged (Redis PUBLISH after a commit), and every
    `poll_seconds` regardless, until `stop` is set.

    `linger_seconds`: after a nudge, wait that long before publishing, so
    the commits of that window leave as one batch. Each batch is one
    websocket message per client (with batch frames), and a message costs
    daphne far more than its bytes (docs/benchmarks.md, "Events"): under
    load a few milliseconds of linger trade that much latency for a
    fraction of daphne's and the relay's CPU: at 200 payments/s and 100
    feeds on one daphne, 10 ms (`manage.py relay`'s default) halved the
    p99 (docs/benchmarks.md, "Events"). 0 publishes at once."""
    relay = outbox.relay_name("relay")
    stop = stop or threading.Event()
    pubsub: Any = None
    while not stop.is_set():
        if pubsub is None and settings.REDIS_URL:
            try:
                pubsub = outbox._redis().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(outbox.NUDGE_CHANNEL)
            except Exception:
                log.warning("relay: Redis unreachable; polling every %.1fs", poll_seconds)
                pubsub = None
        try:
            _publish_round(relay, keep_connection=True)
        except Exception:
            # The database or the channel layer is down: nothing was marked,
            # the rows wait; try again after the poll interval.
            log.exception("relay: publish failed; retrying")
            stop.wait(poll_seconds)
            continue
        if pubsub is None:
            stop.wait(poll_seconds)
            continue
        try:
            message = pubsub.get_message(timeout=poll_seconds)
            if message is not None and linger_seconds:
                stop.wait(linger_seconds)
            # Drain what queued meanwhile: one round serves any number of nudges.
            while message is not None:
                message = pubsub.get_message(timeout=0)
        except Exception:
            pubsub = None


# --- Embedded mode: inside daphne ----------------------------------------------------


class EmbeddedRelay:
    """An asyncio task in the daphne process, publishing to its in-memory
    channel layer. Woken by commits made in this process (API requests,
    pages) through `outbox.nudge`, and polling every
    PAYLAB_RELAY_POLL_SECONDS for commits made elsewhere (worker, commands)."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wakeup: asyncio.Event | None = None

    def _wake(self) -> None:
        if self.loop is not None and self.wakeup is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wakeup.set)

    def ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is not None and not self.task.done() and self.loop is loop:
            return
        self.loop = loop
        self.wakeup = asyncio.Event()
        outbox.add_local_waker(self._wake)
        self.task = loop.create_task(self._run(), name="paylab-embedded-relay")

    async def stop(self) -> None:
        outbox.remove_local_waker(self._wake)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.task = None

    async def _run(self) -> None:
        relay = outbox.relay_name("web")
        assert self.wakeup is not None
        publish = sync_to_async(_publish_round, thread_sensitive=False)
        while True:
            self.wakeup.clear()
            try:
                await publish(relay)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("embedded relay: publish failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), settings.PAYLAB_RELAY_POLL_SECONDS)


embedded = EmbeddedRelay()


def ensure_embedded_relay() -> None:
    """Called by every websocket connect: start the loop if this process owns one."""
    if settings.PAYLAB_RELAY_IN_WEB:
        embedded.ensure_started()
