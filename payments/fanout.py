"""Per-process fan-out of pushed events to the live feeds (docs/events.md, "Hub").

One `Hub` per running event loop — per daphne process in production; per
test, since each test's WebsocketCommunicator runs on a loop of its own —
owns ONE channel-layer channel. It joins each group that at least one local
feed needs (refcounted: `group_add` on the first subscriber, `group_discard`
after the last), receives every push for the process once, and hands the
one message object to each local subscriber of its group with a plain
method call: no channel-layer copy, receive loop or Channels dispatch per
client. Why: at 100 staff feeds that per-client path was most of daphne's
CPU per websocket message (docs/benchmarks.md, "Events").

A subscriber's `offer` must not wait: it queues the message for the
subscriber's own task (payments.consumers), so one client whose socket is
slow never holds the others back.

Channel layers expire a group membership after `group_expiry` (a day on
Redis) unless it is added again; a consumer used to live less long than
that, the hub does not, so it re-adds its groups every `REFRESH_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer

from payments.services.outbox import ALL_GROUP, merchant_group, payment_group

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3600.0


class Subscriber(Protocol):
    def offer(self, message: dict[str, Any]) -> None:
        """Take a pushed message (shared with the group's other local
        subscribers: read it, never change what they read); never block."""


class Hub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.members: dict[str, set[Subscriber]] = {}
        # Serialises joining and leaving, so a group is added once, and a
        # second subscriber to a group being added waits until it is: it is
        # then in the group before it reads the log (join first, read second:
        # payments.consumers).
        self.lock = asyncio.Lock()
        self.reader: asyncio.Task[None] | None = None

    async def subscribe(self, group: str, subscriber: Subscriber) -> None:
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel(prefix="paylab-hub")
            if self.reader is None or self.reader.done():
                self.reader = asyncio.get_running_loop().create_task(
                    self._read(), name="paylab-fanout-hub"
                )
            members = self.members.get(group)
            if members is None:
                await self.layer.group_add(group, self.channel)
                members = self.members[group] = set()
            members.add(subscriber)

    async def unsubscribe(self, group: str, subscriber: Subscriber) -> None:
        async with self.lock:
            members = self.members.get(group)
            if members is None or subscriber not in members:
                return
            members.discard(subscriber)
            if not members:
                del self.members[group]
                await self.layer.group_discard(group, self.channel)

    def subscribers(self, group: str) -> int:
        return len(self.members.get(group, ()))

    async def _read(self) -> None:
        assert self.channel is not None
        refresher = asyncio.get_running_loop().create_task(self._refresh())
        try:
            while True:
                try:
                    message = await self.layer.receive(self.channel)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Redis unreachable: pushes wait in the outbox (a delay,
                    # not a loss); feeds read the gap by `prev` once they flow.
                    log.exception("fan-out hub: receive failed; retrying")
                    await asyncio.sleep(1.0)
                    continue
                try:
                    self.deliver(message)
                except Exception:
                    log.exception("fan-out hub: a malformed push was dropped")
        finally:
            refresher.cancel()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            async with self.lock:
                for group in list(self.members):
                    try:
                        await self.layer.group_add(group, self.channel)
                    except Exception:
                        log.exception("fan-out hub: refreshing %s failed", group)

    def deliver(self, message: dict[str, Any]) -> None:
        """Hand one pushed message to the local subscribers of its group.

        The relay names the group (`group`). A message that does not (sent
        by hand, or by an older relay) goes, per group this hub is in, to
        that group's subscribers with the items that belong to the group —
        the routing `outbox._push` does — and no `prev` (unknown)."""
        group = message.get("group")
        if group is not None:
            self._offer(group, message)
            return
        items = message.get("items", [])
        for joined in list(self.members):
            mine = [item for item in items if joined in _groups_of(item)]
            if mine:
                self._offer(joined, {**message, "items": mine, "prev": None})

    def _offer(self, group: str, message: dict[str, Any]) -> None:
        for subscriber in list(self.members.get(group, ())):
            try:
                subscriber.offer(message)
            except Exception:
                log.exception("fan-out hub: a subscriber refused a push")


def _groups_of(item: dict[str, Any]) -> tuple[str, ...]:
    groups = (ALL_GROUP, merchant_group(item["merchant_id"]))
    if item.get("payment_intent"):
        return (*groups, payment_group(item["payment_intent"]))
    return groups


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (over the current default channel layer)."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("the live feeds need a channel layer (CHANNEL_LAYERS)")
    found = _hubs.get(loop)
    if found is None or found.layer is not layer:
        found = _hubs[loop] = Hub(layer)
    return found
