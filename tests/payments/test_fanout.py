"""The per-process hub (payments.fanout): one channel-layer channel per
process, feeds served from it, and a feed that falls behind closed without
holding back the others."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.test import override_settings

from accounts.models import User
from config.asgi import application
from payments import consumers, fanout
from payments.services import outbox
from tests.conftest import MerchantWithKey
from tests.payments.test_consumers import (
    _cookie,
    _members,
    _synthetic,
    batch_ids,
    connect,
    pay,
    publish,
    received_ids,
)
from tests.processes import free_port, spawn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def relay_driven_by_the_test() -> Iterator[None]:
    with override_settings(PAYLAB_RELAY_IN_WEB=False):
        yield


async def _new_members(group: str, before: list[str]) -> list[str]:
    """The group's members that were not in it before the test: a daphne of
    another test killed with a feed open leaves its channel in a shared
    Redis until the membership expires."""
    return [m for m in await _members(group) if m not in before]


async def test_two_feeds_of_one_process_share_one_channel_and_each_get_every_push_once(
    viewer_user: User, merchant_a: MerchantWithKey
) -> None:
    # given two staff feeds in this process
    before = await _members(outbox.ALL_GROUP)
    one, connected_one, _ = await connect("/ws/events/", viewer_user)
    two, connected_two, _ = await connect("/ws/events/", viewer_user)
    assert connected_one and connected_two

    # then the channel layer has one member in the group: this process's hub
    assert await _new_members(outbox.ALL_GROUP, before) == [fanout.hub().channel]
    assert fanout.hub().subscribers(outbox.ALL_GROUP) == 2

    # when two payments go out, in two relay batches
    _, first = await pay(merchant_a.merchant)
    await publish()
    _, second = await pay(merchant_a.merchant)
    await publish()

    # then each feed gets every event once, in order
    assert await received_ids(one, 6) == first + second
    assert await received_ids(two, 6) == first + second
    assert await one.receive_nothing(timeout=0.3)
    assert await two.receive_nothing(timeout=0.3)
    await one.disconnect()
    await two.disconnect()


async def test_the_last_feed_leaving_a_group_discards_it(
    viewer_user: User, viewer_a: User, merchant_a: MerchantWithKey
) -> None:
    # given two feeds on a merchant's group and one on every merchant
    merchant_group = outbox.merchant_group(merchant_a.merchant.pk)
    before = await _members(outbox.ALL_GROUP)
    staff, _, _ = await connect("/ws/events/", viewer_user)
    one, _, _ = await connect("/ws/events/", viewer_a)
    two, _, _ = await connect("/ws/events/", viewer_a)
    hub_channel = fanout.hub().channel

    # when one merchant feed leaves, the hub stays in the group
    await one.disconnect()
    assert await _members(merchant_group) == [hub_channel]

    # when the other leaves too, the group is discarded (the other group stays)
    await two.disconnect()
    assert await _members(merchant_group) == []
    assert await _new_members(outbox.ALL_GROUP, before) == [hub_channel]

    # and a feed joining again is served
    again, connected, _ = await connect("/ws/events/", viewer_a)
    assert connected
    assert await _members(merchant_group) == [hub_channel]
    _, events = await pay(merchant_a.merchant)
    await publish()
    assert await received_ids(again, len(events)) == events
    assert await received_ids(staff, len(events)) == events
    await again.disconnect()
    await staff.disconnect()
    assert await _new_members(outbox.ALL_GROUP, before) == []


def _held_back(gate: asyncio.Event) -> Any:
    """The ASGI app behind a socket that takes no frames until `gate` opens:
    its server's send waits (as a server that holds back a slow client's
    frames does) — the close frame excepted."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def held_send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.send":
                await gate.wait()
            await send(message)

        await application(scope, receive, held_send)

    return app


async def _connect_held_back(path: str, user: User, gate: asyncio.Event) -> WebsocketCommunicator:
    cookie = await database_sync_to_async(_cookie)(user)
    headers = [
        (b"origin", b"http://localhost"),
        (b"host", b"localhost"),
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
    ]
    communicator = WebsocketCommunicator(_held_back(gate), path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_a_feed_that_falls_behind_is_closed_without_delaying_the_others_and_resumes(
    viewer_a: User, merchant_a: MerchantWithKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a feed whose socket took one payment's events, then stopped taking frames,
    # next to a feed that keeps up (a feed may queue 4 events here)
    monkeypatch.setattr(consumers, "MAX_PENDING_EVENTS", 4)
    gate = asyncio.Event()
    gate.set()
    slow = await _connect_held_back("/ws/events/", viewer_a, gate)
    fast, connected, _ = await connect("/ws/events/", viewer_a)
    assert connected
    _, seen = await pay(merchant_a.merchant)
    await publish()
    assert await received_ids(slow, len(seen)) == seen
    assert await received_ids(fast, len(seen)) == seen
    gate.clear()

    # when three payments go out, one relay batch each (3 events a batch:
    # the slow feed waits on the first, queues the second, and the third
    # is more than it may queue)
    missed: list[str] = []
    for _ in range(3):
        _, events = await pay(merchant_a.merchant)
        await publish()
        missed += events

    # then the other feed got every event, while the slow one's send still waits
    assert await received_ids(fast, len(missed)) == missed
    assert not gate.is_set()
    # and the slow one is closed with the code that makes the page resume
    assert await slow.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": consumers.CLOSE_FELL_BEHIND,
    }
    await slow.disconnect()

    # when the page reconnects with the last event id it saw, then a payment goes out
    again, connected, _ = await connect(f"/ws/events/?last_event_id={seen[-1]}", viewer_a)
    assert connected
    _, live = await pay(merchant_a.merchant)
    await publish()

    # then it gets what it missed from the log, then live events: each once
    assert await received_ids(again, len(missed) + len(live)) == missed + live
    assert await again.receive_nothing(timeout=0.3)
    assert await received_ids(fast, len(live)) == live
    await again.disconnect()
    await fast.disconnect()


@pytest.mark.redis
async def test_the_hub_takes_what_is_queued_for_it_in_one_round_trip() -> None:
    """On Redis the hub pops its channel's backlog whole (`_RedisQueue`)
    rather than one message per `receive` (four round trips each)."""
    layer: Any = get_channel_layer()
    assert fanout._is_redis_layer(layer)
    # given a hub channel with three pushes queued in its group
    group = "paylab.test-backlog"
    channel = await layer.new_channel(prefix="paylab-hub-test")
    await layer.group_add(group, channel)
    for n in (1, 2, 3):
        await layer.group_send(group, {"type": outbox.PUSH_TYPE, "n": n})
    queue = fanout._RedisQueue(layer, channel)

    # when it takes: all three, in order, as sent
    assert [m["n"] for m in await queue.take()] == [1, 2, 3]

    # and with nothing queued it waits for the next one
    waiting = asyncio.create_task(queue.take())
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await layer.group_send(group, {"type": outbox.PUSH_TYPE, "n": 4})
    assert await asyncio.wait_for(waiting, 5) == [{"type": outbox.PUSH_TYPE, "n": 4}]
    await layer.group_discard(group, channel)


async def test_pushes_queued_while_a_feed_sends_go_out_as_one_batch_frame(
    viewer_a: User, merchant_a: MerchantWithKey
) -> None:
    # given a batching client and a plain one on their merchant's feed
    m = merchant_a.merchant.pk
    group = outbox.merchant_group(m)
    batching, connected, _ = await connect("/ws/events/?batch=1", viewer_a)
    assert connected
    plain, connected, _ = await connect("/ws/events/", viewer_a)
    assert connected

    # when three pushes reach the hub before the feeds get a turn (as a
    # backlog taken whole does)
    for p in (1, 2, 3):
        fanout.hub().deliver(
            {"type": outbox.PUSH_TYPE, "group": group, "items": [_synthetic(p, f"evt_{p}", m)]}
        )

    # then the batching client gets them as one frame, in order; the plain
    # one a frame per event
    assert await batch_ids(batching) == ["evt_1", "evt_2", "evt_3"]
    assert [(await plain.receive_json_from(timeout=5))["event"]["id"] for _ in range(3)] == [
        "evt_1",
        "evt_2",
        "evt_3",
    ]
    assert await batching.receive_nothing(timeout=0.3)
    assert await plain.receive_nothing(timeout=0.3)
    await batching.disconnect()
    await plain.disconnect()


class _Collector:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def offer(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


@pytest.mark.redis
async def test_the_hub_joins_its_groups_again_after_redis_restarted_empty(tmp_path: Any) -> None:
    # given a hub on a Redis of the test's own (no persistence), in a group
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(tmp_path)]
    redis = spawn(tmp_path, "redis", os.environ, *command)
    layer = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{port}/0"])
    hub = fanout.Hub(layer)
    collector = _Collector()
    group = "paylab.test-restart"
    try:
        await _until_up(layer)
        await hub.subscribe(group, collector)
        await layer.group_send(group, {"type": outbox.PUSH_TYPE, "group": group, "n": 1})
        await _until(lambda: [m["n"] for m in collector.messages] == [1])

        # when Redis dies and comes back with nothing (the membership lost)
        redis.kill()
        redis.wait()
        redis = spawn(tmp_path, "redis", os.environ, *command)
        await _until_up(layer)

        # then a push to the group reaches the hub again: it joined again
        async def pushed_and_received() -> bool:
            await layer.group_send(group, {"type": outbox.PUSH_TYPE, "group": group, "n": 2})
            await asyncio.sleep(0.2)
            return 2 in [m["n"] for m in collector.messages]

        for _ in range(75):
            if await pushed_and_received():
                break
        assert 2 in [m["n"] for m in collector.messages]
    finally:
        if hub.reader is not None:
            hub.reader.cancel()
        redis.kill()
        redis.wait()
        await layer.close_pools()


async def _until(check: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def _until_up(layer: Any) -> None:
    for _ in range(200):
        try:
            await layer.connection(0).ping()
            return
        except Exception:  # not up yet
            await asyncio.sleep(0.05)
    raise AssertionError("the test's Redis did not start")
