"""The live feeds: who may connect, what each sees, and resuming after a
reconnect with exactly the missed events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client, override_settings

from accounts.models import Merchant, User
from config.asgi import application
from payments import relay
from payments.models import Event
from payments.models.intents import CaptureMethod
from payments.services import intents, outbox
from tests.conftest import MerchantWithKey

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def relay_driven_by_the_test() -> Iterator[None]:
    """The tests publish explicitly, so they know when events go out."""
    with override_settings(PAYLAB_RELAY_IN_WEB=False):
        yield


def _cookie(user: User) -> str:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def connect(
    path: str, user: User | None = None, origin: bytes = b"http://localhost"
) -> tuple[WebsocketCommunicator, bool, Any]:
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if user is not None:
        cookie = await database_sync_to_async(_cookie)(user)
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


@database_sync_to_async
def pay(merchant: Merchant) -> tuple[str, list[str]]:
    """A successful payment; its id and its event ids in order."""
    intent = intents.payment_intent_create(
        merchant=merchant,
        amount=1_500,
        currency="usd",
        capture_method=CaptureMethod.AUTOMATIC,
        payment_method="pm_card_visa",
        confirm=True,
    ).intent
    events = Event.objects.filter(payment_intent=intent).order_by("sequence")
    return intent.pk, [e.pk for e in events]


@database_sync_to_async
def publish() -> int:
    return outbox.outbox_publish(relay="test", on_deliveries=lambda _: None).count


async def received_ids(communicator: WebsocketCommunicator, count: int) -> list[str]:
    messages = [await communicator.receive_json_from(timeout=5) for _ in range(count)]
    assert all(m["type"] == "event" for m in messages)
    assert [m["position"] for m in messages] == sorted(m["position"] for m in messages)
    return [m["event"]["id"] for m in messages]


async def test_an_unauthenticated_connection_is_refused() -> None:
    _, connected, code = await connect("/ws/events/")

    assert not connected
    assert code == 4401


async def test_a_connection_from_another_origin_is_refused(admin_user: User) -> None:
    _, connected, _ = await connect("/ws/events/", admin_user, origin=b"http://evil.example")

    assert not connected


@pytest.mark.parametrize("path", ["/ws/events/?merchant={b}", "/ws/payments/{pi_b}/"])
async def test_a_merchant_user_cannot_watch_another_merchant(
    owner_a: User, merchant_b: MerchantWithKey, path: str
) -> None:
    pi_b, _ = await pay(merchant_b.merchant)

    _, connected, code = await connect(path.format(b=merchant_b.merchant.pk, pi_b=pi_b), owner_a)

    assert not connected
    assert code == (4403 if "merchant=" in path else 4404)


async def test_an_unknown_payment_is_not_found(admin_user: User) -> None:
    _, connected, code = await connect("/ws/payments/pi_doesnotexist/", admin_user)

    assert not connected and code == 4404


async def test_a_merchant_user_receives_only_its_merchants_events(
    owner_a: User, merchant_a: MerchantWithKey, merchant_b: MerchantWithKey
) -> None:
    # given merchant A's owner on the feed
    communicator, connected, _ = await connect("/ws/events/", owner_a)
    assert connected

    # when both merchants take payments and the relay publishes
    await pay(merchant_b.merchant)
    _, events_a = await pay(merchant_a.merchant)
    await publish()

    # then only A's arrive, rendered from the pushed snapshot
    assert await received_ids(communicator, len(events_a)) == events_a
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.fixture(params=["admin_user", "operator_user", "viewer_user"])
def staff(request: pytest.FixtureRequest) -> User:
    return request.getfixturevalue(request.param)


async def test_staff_receive_every_merchant_or_the_one_they_filter(
    staff: User, merchant_a: MerchantWithKey, merchant_b: MerchantWithKey
) -> None:
    everything, connected_all, _ = await connect("/ws/events/", staff)
    only_b, connected_b, _ = await connect(f"/ws/events/?merchant={merchant_b.merchant.pk}", staff)
    assert connected_all and connected_b

    _, events_a = await pay(merchant_a.merchant)
    _, events_b = await pay(merchant_b.merchant)
    await publish()

    assert await received_ids(everything, len(events_a) + len(events_b)) == events_a + events_b
    assert await received_ids(only_b, len(events_b)) == events_b
    assert await only_b.receive_nothing(timeout=0.3)
    await everything.disconnect()
    await only_b.disconnect()


async def test_the_payment_feed_carries_only_that_payments_events(
    developer_a: User, merchant_a: MerchantWithKey
) -> None:
    watched, _ = await pay(merchant_a.merchant)
    await publish()
    communicator, connected, _ = await connect(f"/ws/payments/{watched}/", developer_a)
    assert connected

    await pay(merchant_a.merchant)
    refund_events = await database_sync_to_async(_refund)(merchant_a.merchant, watched)
    await publish()

    assert await received_ids(communicator, len(refund_events)) == refund_events
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


def _refund(merchant: Merchant, payment_id: str) -> list[str]:
    from payments.services import refunds

    before = set(Event.objects.filter(payment_intent_id=payment_id).values_list("pk", flat=True))
    refunds.refund_create(merchant=merchant, payment_intent=payment_id, amount=500)
    return list(
        Event.objects.filter(payment_intent_id=payment_id)
        .exclude(pk__in=before)
        .order_by("sequence")
        .values_list("pk", flat=True)
    )


async def test_a_reconnect_receives_the_gap_exactly_once_then_live_events(
    viewer_a: User, merchant_a: MerchantWithKey, merchant_b: MerchantWithKey
) -> None:
    # given a client that saw one payment's events, then went away
    first, connected, _ = await connect("/ws/events/", viewer_a)
    assert connected
    _, seen = await pay(merchant_a.merchant)
    await publish()
    assert await received_ids(first, len(seen)) == seen
    await first.disconnect()

    # while away, two payments of its merchant (and one of another) went out
    _, missed_1 = await pay(merchant_a.merchant)
    await pay(merchant_b.merchant)
    _, missed_2 = await pay(merchant_a.merchant)
    await publish()

    # when it reconnects with the last event id it saw
    again, connected, _ = await connect(f"/ws/events/?last_event_id={seen[-1]}", viewer_a)
    assert connected
    _, live = await pay(merchant_a.merchant)
    await publish()

    # then the missed events first, in publication order, then the live ones, once
    expected = missed_1 + missed_2 + live
    assert await received_ids(again, len(expected)) == expected
    assert await again.receive_nothing(timeout=0.3)
    await again.disconnect()


async def test_repeated_pushes_are_dropped(viewer_a: User, merchant_a: MerchantWithKey) -> None:
    communicator, connected, _ = await connect("/ws/events/", viewer_a)
    assert connected
    _, events = await pay(merchant_a.merchant)
    await publish()
    assert await received_ids(communicator, len(events)) == events

    # when a relay pushes the same batch again (at least once)
    await database_sync_to_async(_push_again)(events)

    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


def _push_again(event_ids: list[str]) -> None:
    from payments.models import OutboxMessage

    rows = OutboxMessage.objects.filter(event_id__in=event_ids).select_related("event")
    outbox._push(
        [outbox.push_item(row.event, row.position or 0) for row in rows.order_by("position")]
    )


@pytest.mark.parametrize("cursor", ["evt_unknown", "other merchant"])
async def test_a_reconnect_with_an_unknown_cursor_is_refused(
    viewer_a: User, merchant_b: MerchantWithKey, cursor: str
) -> None:
    if cursor == "other merchant":
        _, events_b = await pay(merchant_b.merchant)
        await publish()
        cursor = events_b[0]

    _, connected, code = await connect(f"/ws/events/?last_event_id={cursor}", viewer_a)

    assert not connected and code == 4409


async def test_in_embedded_mode_the_web_process_relays_by_itself(
    owner_a: User, merchant_a: MerchantWithKey
) -> None:
    # given the relay loop that daphne runs, started by the first connect
    with override_settings(PAYLAB_RELAY_IN_WEB=True):
        communicator, connected, _ = await connect("/ws/events/", owner_a)
        assert connected
        try:
            # when a payment commits, with nobody publishing explicitly
            _, events = await pay(merchant_a.merchant)

            # then it arrives
            assert await received_ids(communicator, len(events)) == events
        finally:
            await communicator.disconnect()
            await relay.embedded.stop()


async def test_a_deactivated_users_session_is_refused(viewer_a: User) -> None:
    # given a session opened before the account was deactivated
    cookie = await database_sync_to_async(_cookie)(viewer_a)
    viewer_a.is_active = False
    await database_sync_to_async(viewer_a.save)(update_fields=["is_active"])
    headers = [
        (b"origin", b"http://localhost"),
        (b"host", b"localhost"),
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
    ]

    connected, code = await WebsocketCommunicator(application, "/ws/events/", headers).connect()

    assert not connected and code == 4401


async def test_frames_are_sent_as_the_relay_encoded_them(
    viewer_a: User, merchant_a: MerchantWithKey
) -> None:
    """The consumer renders from the pushed message alone: an event the
    database has never seen is sent all the same."""
    communicator, connected, _ = await connect("/ws/events/", viewer_a)
    assert connected
    frame = json.dumps({"type": "event", "position": 7, "event": {"id": "evt_only_pushed"}})
    item = {
        "position": 7,
        "event_id": "evt_only_pushed",
        "merchant_id": merchant_a.merchant.pk,
        "payment_intent": None,
        "frame": frame,
    }

    await get_channel_layer().group_send(  # type: ignore[union-attr]
        outbox.merchant_group(merchant_a.merchant.pk), {"type": outbox.PUSH_TYPE, "items": [item]}
    )

    assert await communicator.receive_from(timeout=5) == frame
    await communicator.disconnect()


async def test_a_batch_republished_with_other_positions_is_sent_once_without_a_gap(
    viewer_a: User, merchant_a: MerchantWithKey
) -> None:
    # given a client that received the second of three events, pushed by a
    # relay that then died before committing its batch
    communicator, connected, _ = await connect("/ws/events/", viewer_a)
    assert connected
    _, (first, second, third) = await pay(merchant_a.merchant)
    items = await database_sync_to_async(_items)([first, second, third])
    await database_sync_to_async(outbox._push)([{**items[second], "position": 10}])
    assert await received_ids(communicator, 1) == [second]

    # when the next relay publishes all three, with the first taking the
    # position the dead relay had given the second
    await database_sync_to_async(outbox._push)(
        [{**items[e], "position": p} for e, p in ((first, 10), (second, 11), (third, 12))]
    )

    # then the client gets the two it lacked, and the second not again
    assert await received_ids(communicator, 2) == [first, third]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


def _items(event_ids: list[str]) -> dict[str, dict[str, Any]]:
    return {e.pk: outbox.push_item(e, 0) for e in Event.objects.filter(pk__in=event_ids)}


async def test_a_batching_client_gets_a_relay_batch_as_one_frame(
    viewer_a: User, merchant_a: MerchantWithKey
) -> None:
    communicator, connected, _ = await connect("/ws/events/?batch=1", viewer_a)
    assert connected

    _, events = await pay(merchant_a.merchant)
    await publish()

    frame = await communicator.receive_json_from(timeout=5)
    assert frame["type"] == "batch"
    assert [f["event"]["id"] for f in frame["frames"]] == events
    assert {f["type"] for f in frame["frames"]} == {"event"}
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


def _synthetic(position: int, event_id: str, merchant_id: int) -> dict[str, Any]:
    frame = json.dumps({"type": "event", "position": position, "event": {"id": event_id}})
    return {
        "position": position,
        "event_id": event_id,
        "merchant_id": merchant_id,
        "payment_intent": None,
        "frame": frame,
    }


async def test_repeats_are_dropped_after_the_memory_is_trimmed(
    viewer_a: User, merchant_a: MerchantWithKey
) -> None:
    # given a client remembering at least 65 events (a relay batch of 1 + 64),
    # sent 200 of them
    m = merchant_a.merchant.pk
    layer = get_channel_layer()
    assert layer is not None
    with override_settings(PAYLAB_RELAY_BATCH=1):
        communicator, connected, _ = await connect("/ws/events/", viewer_a)
    assert connected
    group = outbox.merchant_group(m)
    sent = [_synthetic(p, f"evt_{p}", m) for p in range(1, 201)]
    await layer.group_send(group, {"type": outbox.PUSH_TYPE, "items": sent})
    for p in range(1, 201):
        assert json.loads(await communicator.receive_from(timeout=5))["position"] == p

    # when an event long forgotten is pushed again at its old position, a
    # recent one at a new position, and an event never sent at a lower one
    again = [
        _synthetic(10, "evt_10", m),
        _synthetic(195, "evt_new", m),
        _synthetic(250, "evt_190", m),
    ]
    await layer.group_send(group, {"type": outbox.PUSH_TYPE, "items": again})

    # then only the new one is sent
    assert json.loads(await communicator.receive_from(timeout=5))["event"]["id"] == "evt_new"
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def _members(group: str) -> list[str]:
    layer: Any = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return list(layer.groups.get(group, {}))
    redis = layer.connection(layer.consistent_hash(group))
    return [m.decode() for m in await redis.zrange(layer._group_key(group), 0, -1)]


async def test_a_push_the_channel_layer_dropped_is_read_from_the_log(
    viewer_a: User, merchant_a: MerchantWithKey
) -> None:
    # given a client on its merchant's feed that received one payment
    layer = get_channel_layer()
    assert layer is not None
    communicator, connected, _ = await connect("/ws/events/", viewer_a)
    assert connected
    _, first = await pay(merchant_a.merchant)
    await publish()
    assert await received_ids(communicator, len(first)) == first

    # when the next push never reaches it (as a full channel's would not)
    group = outbox.merchant_group(merchant_a.merchant.pk)
    [channel] = await _members(group)
    await layer.group_discard(group, channel)
    _, dropped = await pay(merchant_a.merchant)
    await publish()
    await layer.group_add(group, channel)
    assert await communicator.receive_nothing(timeout=0.3)
    # and a later one does
    _, later = await pay(merchant_a.merchant)
    await publish()

    # then the later push tells it something is missing: it reads that from
    # the log first, and gets everything once, in order
    assert await received_ids(communicator, len(dropped) + len(later)) == dropped + later
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def batch_ids(communicator: WebsocketCommunicator) -> list[str]:
    """The event ids of one message: a batch frame's, in order, or one event's."""
    message = await communicator.receive_json_from(timeout=5)
    frames = message["frames"] if message["type"] == "batch" else [message]
    assert {f["type"] for f in frames} == {"event"}
    assert [f["position"] for f in frames] == sorted(f["position"] for f in frames)
    return [f["event"]["id"] for f in frames]


async def test_batch_frames_carry_exactly_the_events_in_order_without_a_repeat_across_a_reconnect(
    viewer_a: User, merchant_a: MerchantWithKey, merchant_b: MerchantWithKey
) -> None:
    # given a batching client that got two payments as one relay batch
    first, connected, _ = await connect("/ws/events/?batch=1", viewer_a)
    assert connected
    _, one = await pay(merchant_a.merchant)
    _, two = await pay(merchant_a.merchant)
    await publish()
    assert await batch_ids(first) == one + two
    await first.disconnect()

    # while away, two payments of its merchant (and one of another) went out
    _, missed_1 = await pay(merchant_a.merchant)
    await pay(merchant_b.merchant)
    _, missed_2 = await pay(merchant_a.merchant)
    await publish()

    # when it reconnects with the last event id it saw, and a payment goes out
    # (its batch pushed again too, as by a relay that died before committing)
    again, connected, _ = await connect(f"/ws/events/?batch=1&last_event_id={two[-1]}", viewer_a)
    assert connected
    _, live = await pay(merchant_a.merchant)
    await publish()
    await database_sync_to_async(_push_again)(live)

    # then the gap as one frame, then the live batch as one frame: every
    # event once, in publication order
    assert await batch_ids(again) == missed_1 + missed_2
    assert await batch_ids(again) == live
    assert await again.receive_nothing(timeout=0.3)
    await again.disconnect()


async def test_batching_clients_of_one_process_each_get_only_what_they_lack(
    viewer_a: User, merchant_a: MerchantWithKey
) -> None:
    # given two batching clients on one feed: one has seen event 2, one has not
    m = merchant_a.merchant.pk
    layer = get_channel_layer()
    assert layer is not None
    group = outbox.merchant_group(m)
    early, connected, _ = await connect("/ws/events/?batch=1", viewer_a)
    assert connected
    await layer.group_send(
        group, {"type": outbox.PUSH_TYPE, "items": [_synthetic(p, f"evt_{p}", m) for p in (1, 2)]}
    )
    assert await batch_ids(early) == ["evt_1", "evt_2"]
    late, connected, _ = await connect("/ws/events/?batch=1", viewer_a)
    assert connected

    # when one message carries events 2 to 4 to both (the batch frame a
    # client lacking all of them gets is joined once for the process)
    items = [_synthetic(p, f"evt_{p}", m) for p in (2, 3, 4)]
    await layer.group_send(group, {"type": outbox.PUSH_TYPE, "items": items})

    # then each gets the events it lacks, as one frame
    assert await batch_ids(early) == ["evt_3", "evt_4"]
    assert await batch_ids(late) == ["evt_2", "evt_3", "evt_4"]
    assert await early.receive_nothing(timeout=0.3)
    assert await late.receive_nothing(timeout=0.3)
    await early.disconnect()
    await late.disconnect()
