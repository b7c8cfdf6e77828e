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

The hub takes what is queued for it in one go when the layer is Redis
(`_RedisQueue`): channels_redis's `receive` costs four sequential round
trips per message, each waiting for an event-loop turn that also runs the
feeds' sends, so at 100 feeds one daphne received fewer pushes per second
than the relay sent and the queue in Redis grew (docs/benchmarks.md,
"Events"). Taking the backlog whole also hands each feed several pushes
at once, which it sends as one frame (payments.consumers): the busier the
process, the fewer frames per event.

Channel layers expire a group membership after `group_expiry` (a day on
Redis) unless it is added again; a consumer used to live less long than
that, the hub does not, so it re-adds its groups every `REFRESH_SECONDS` —
and after Redis was unreachable, since a Redis restarted without its data
has forgotten them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer

from payments.services.outbox import ALL_GROUP, merchant_group, payment_group

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3600.0
# At most this many queued pushes are taken per round trip.
TAKE_AT_ONCE = 500


class _RedisQueue:
    """The hub's channel read directly from its sorted set in Redis (the
    one channels_redis's `group_send` writes to): a blocking BZPOPMIN for
    the first message and a ZPOPMIN of up to `TAKE_AT_ONCE` - 1 more, sent
    together (one round trip). No in-flight backup as `receive` keeps: a
    push lost with a process that dies between the pop and the hand-over
    is read from the log by the feeds (`prev`), like any push the layer
    drops. The hub's
    channel has a name prefix of its own (`Hub.subscribe`), so no other
    channel of the process shares the key."""

    def __init__(self, layer: Any, channel: str) -> None:
        name = layer.non_local_name(channel)
        self.key = layer.prefix + name
        self.index = layer.consistent_hash(name)
        self.layer = layer

    async def take(self) -> list[dict[str, Any]]:
        # One round trip: the blocking pop waits for the first message (or
        # times out), the pop after it, sent in the same write, takes the
        # rest of the backlog.
        pipe = self.layer.connection(self.index).pipeline(transaction=False)
        pipe.bzpopmin(self.key, timeout=self.layer.brpop_timeout)
        pipe.zpopmin(self.key, TAKE_AT_ONCE - 1)
        first, rest = await pipe.execute()
        contents = ([first[1]] if first else []) + [member for member, _ in rest]
        messages = []
        for content in contents:
            message = self.layer.deserialize(content)
            message.pop("__asgi_channel__", None)
            messages.append(message)
        return messages


def _is_redis_layer(layer: Any) -> bool:
    return isinstance(layer, RedisChannelLayer)


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
                # A prefix per hub: its Redis key is its own (`_RedisQueue`).
                self.channel = await self.layer.new_channel(
                    prefix=f"paylab-hub-{uuid.uuid4().hex[:12]}"
                )
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
        channel = self.channel
        queue = _RedisQueue(self.layer, channel) if _is_redis_layer(self.layer) else None
        lost = False
        try:
            while True:
                try:
                    if lost:
                        # A Redis that restarted without its data has
                        # forgotten the groups: join them again before
                        # waiting on the channel.
                        await self._rejoin()
                        lost = False
                    if queue is not None:
                        messages = await queue.take()
                    else:
                        messages = [await self.layer.receive(channel)]
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Redis unreachable: pushes wait in the outbox (a delay,
                    # not a loss); feeds read the gap by `prev` once they flow.
                    log.exception("fan-out hub: receive failed; retrying")
                    lost = True
                    await asyncio.sleep(1.0)
                    continue
                for message in messages:
                    try:
                        self.deliver(message)
                    except Exception:
                        log.exception("fan-out hub: a malformed push was dropped")
        finally:
            refresher.cancel()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self._rejoin()
            except Exception:
                log.exception("fan-out hub: refreshing its groups failed")

    async def _rejoin(self) -> None:
        """Add the channel to every group a local feed needs (again)."""
        async with self.lock:
            for group in list(self.members):
                await self.layer.group_add(group, self.channel)

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
