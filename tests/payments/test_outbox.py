"""The outbox relay: every committed event published once, in a position
order, pushed with its snapshot, owing webhooks once; nudged on commit; its
lag on /readyz."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from accounts.models import Merchant
from payments import presenters
from payments.models import Event, OutboxMessage, PaymentIntent, WebhookDelivery
from payments.models.intents import CaptureMethod
from payments.services import intents, outbox, webhooks
from tests.conftest import MerchantWithKey


def pay(
    merchant: Merchant, *, at: datetime | None = None, card: str = "pm_card_visa"
) -> PaymentIntent:
    return intents.payment_intent_create(
        merchant=merchant,
        amount=2_000,
        currency="usd",
        capture_method=CaptureMethod.AUTOMATIC,
        payment_method=card,
        confirm=True,
        now=at,
    ).intent


def unpublished() -> int:
    return OutboxMessage.objects.filter(published_at__isnull=True).count()


def no_queue(_: list[int]) -> None:
    """Delivery tasks are not queued here; tests/payments/test_webhooks.py delivers."""


@pytest.mark.django_db
def test_relay_publishes_every_message_once_with_consecutive_positions(
    merchant_a: MerchantWithKey,
) -> None:
    # given three payments' events in the outbox
    for _ in range(3):
        pay(merchant_a.merchant)
    total = OutboxMessage.objects.count()
    assert total >= 6 and unpublished() == total

    # when the relay runs twice
    first = outbox.outbox_publish(relay="test", on_deliveries=no_queue)
    second = outbox.outbox_publish(relay="test", on_deliveries=no_queue)

    # then everything was published by the first, in id order, once
    assert (first.count, second.count) == (total, 0)
    rows = list(OutboxMessage.objects.order_by("id"))
    assert [r.position for r in rows] == list(range(1, total + 1))
    assert {r.claimed_by for r in rows} == {"test"}
    assert all(r.published_at is not None for r in rows)


@pytest.mark.django_db
def test_relay_publishes_in_batches_continuing_the_positions(merchant_a: MerchantWithKey) -> None:
    for _ in range(2):
        pay(merchant_a.merchant)
    total = OutboxMessage.objects.count()

    counts = []
    while published := outbox.outbox_publish(relay="t", limit=3, on_deliveries=no_queue).count:
        counts.append(published)

    assert sum(counts) == total and max(counts) == 3
    positions = list(OutboxMessage.objects.order_by("id").values_list("position", flat=True))
    assert positions == list(range(1, total + 1))


@pytest.mark.django_db
def test_sweep_leaves_rows_younger_than_the_grace_period(merchant_a: MerchantWithKey) -> None:
    now = timezone.now()
    pay(merchant_a.merchant, at=now - timedelta(seconds=30))
    old = OutboxMessage.objects.count()
    pay(merchant_a.merchant, at=now)

    published = outbox.outbox_publish(
        relay="sweep", older_than=10, now=now, on_deliveries=no_queue
    ).count

    assert published == old
    assert unpublished() == OutboxMessage.objects.count() - old


@pytest.mark.django_db
def test_relay_owes_each_event_once_to_each_enabled_subscribed_endpoint(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey
) -> None:
    # given endpoints: one for every event, one for successes only, a
    # disabled one, and another merchant's
    a = merchant_a.merchant
    every = webhooks.webhook_endpoint_create(
        merchant=a, url="http://127.0.0.1:9/a", enabled_events=["*"]
    )
    succeeded = webhooks.webhook_endpoint_create(
        merchant=a, url="http://127.0.0.1:9/b", enabled_events=["payment_intent.succeeded"]
    )
    off = webhooks.webhook_endpoint_create(
        merchant=a, url="http://127.0.0.1:9/c", enabled_events=["*"]
    )
    webhooks.webhook_endpoint_update(merchant=a, endpoint_id=off.pk, disabled=True)
    webhooks.webhook_endpoint_create(
        merchant=merchant_b.merchant, url="http://127.0.0.1:9/d", enabled_events=["*"]
    )
    intent = pay(a)
    events = list(Event.objects.filter(payment_intent=intent))

    # when the relay publishes, and the deliveries are owed a second time
    # (as a relay that died before committing would)
    queued: list[int] = []
    outbox.outbox_publish(relay="t", on_deliveries=queued.extend)
    outbox._owe_webhooks([(e.pk, e.merchant_id, e.type) for e in events], timezone.now())

    # then
    owed = WebhookDelivery.objects.all()
    assert sorted(owed.filter(endpoint=every).values_list("event_id", flat=True)) == sorted(
        e.pk for e in events
    )
    assert list(owed.filter(endpoint=succeeded).values_list("event__type", flat=True)) == [
        "payment_intent.succeeded"
    ]
    assert owed.count() == len(events) + 1
    assert all(d.status == "pending" and d.merchant_id == a.pk for d in owed)


@pytest.mark.django_db(transaction=True)
async def test_relay_pushes_each_event_with_its_snapshot_to_its_groups(
    merchant_a: MerchantWithKey,
) -> None:
    # given a channel in each of the three groups
    layer = get_channel_layer()
    assert layer is not None
    intent = await sync_to_async(pay)(merchant_a.merchant)
    channels = {}
    for group in (
        outbox.ALL_GROUP,
        outbox.merchant_group(merchant_a.merchant.pk),
        outbox.payment_group(intent.pk),
    ):
        channels[group] = await layer.new_channel()
        await layer.group_add(group, channels[group])
    events = await sync_to_async(
        lambda: list(Event.objects.filter(payment_intent=intent).order_by("sequence"))
    )()

    # when the relay publishes
    await sync_to_async(outbox.outbox_publish)(relay="t", on_deliveries=no_queue)

    # then every group received every event, in order, as the frame
    # consumers send: the Stripe snapshot
    for group, channel in channels.items():
        message = await layer.receive(channel)
        assert message["type"] == outbox.PUSH_TYPE
        items = message["items"]
        assert [i["event_id"] for i in items] == [e.pk for e in events], group
        assert [i["position"] for i in items] == sorted(i["position"] for i in items)
        assert {i["merchant_id"] for i in items} == {merchant_a.merchant.pk}
        frame = json.loads(items[-1]["frame"])
        assert frame["type"] == "event" and frame["position"] == items[-1]["position"]
        assert frame["event"]["data"]["object"]["id"] == intent.pk
        assert frame["event"]["type"] == "payment_intent.succeeded"
        await layer.group_discard(group, channel)


@pytest.mark.django_db(transaction=True)
async def test_pushed_frames_are_the_stripe_event_objects_of_the_api(
    merchant_a: MerchantWithKey,
) -> None:
    """The relay splices each snapshot into its frame as the database's JSON
    text (no decoding): what a client parses is GET /v1/events/{id}'s object."""
    layer = get_channel_layer()
    assert layer is not None
    intent = await sync_to_async(pay)(merchant_a.merchant)
    channel = await layer.new_channel()
    await layer.group_add(outbox.payment_group(intent.pk), channel)

    await sync_to_async(outbox.outbox_publish)(relay="t", on_deliveries=no_queue)

    message = await layer.receive(channel)
    frames = [json.loads(item["frame"]) for item in message["items"]]
    events = await sync_to_async(
        lambda: [
            presenters.event(e)
            for e in Event.objects.filter(payment_intent=intent).order_by("sequence")
        ]
    )()
    assert [f["event"] for f in frames] == events
    assert [f["position"] for f in frames] == [i["position"] for i in message["items"]]
    await layer.group_discard(outbox.payment_group(intent.pk), channel)


@pytest.mark.django_db
def test_one_nudge_after_commit_however_many_events(
    merchant_a: MerchantWithKey, django_capture_on_commit_callbacks: Any
) -> None:
    calls: list[int] = []

    def wake() -> None:
        calls.append(1)

    outbox.add_local_waker(wake)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            intent = pay(merchant_a.merchant)
            assert calls == []

        assert Event.objects.filter(payment_intent=intent).count() > 1
        assert calls == [1]
    finally:
        outbox.remove_local_waker(wake)


@pytest.mark.django_db(transaction=True)
def test_nudge_wakes_in_process_relays_on_commit_only(merchant_a: MerchantWithKey) -> None:
    calls: list[int] = []
    outbox.add_local_waker(lambda: calls.append(1))
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            pay(merchant_a.merchant)
            raise RuntimeError("rolled back")
        assert calls == []

        pay(merchant_a.merchant)

        assert calls == [1]
    finally:
        outbox._local_wakers.clear()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_relays_publish_each_message_exactly_once(merchant_a: MerchantWithKey) -> None:
    # given a backlog
    for _ in range(20):
        pay(merchant_a.merchant)
    total = OutboxMessage.objects.count()
    errors: list[BaseException] = []

    def relay(name: str) -> None:
        try:
            while OutboxMessage.objects.filter(published_at__isnull=True).exists():
                outbox.outbox_publish(relay=name, limit=7, on_deliveries=no_queue)
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    # when four relays drain it at once
    threads = [threading.Thread(target=relay, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then each row got one position, and the positions have no gap
    assert errors == []
    rows = list(OutboxMessage.objects.values_list("position", "published_at"))
    assert len(rows) == total
    assert sorted(p for p, _ in rows) == list(range(1, total + 1))
    assert all(published is not None for _, published in rows)


@pytest.mark.django_db
def test_readyz_reports_outbox_lag_and_is_503_past_the_limit(
    client: Any, merchant_a: MerchantWithKey
) -> None:
    # given an event committed two minutes ago and never published
    pay(merchant_a.merchant, at=timezone.now() - timedelta(minutes=2))

    with override_settings(PAYLAB_OUTBOX_MAX_LAG_SECONDS=60):
        lagging = client.get("/readyz")
        outbox.outbox_publish(relay="t", on_deliveries=no_queue)
        drained = client.get("/readyz")

    assert lagging.status_code == 503
    assert lagging.json()["failing"] == ["outbox"]
    assert "backlog" in lagging.json()["checks"]["outbox"]["error"]
    assert drained.status_code == 200
    assert drained.json()["checks"]["outbox"]["backlog"] == 0
    assert drained.json()["checks"]["outbox"]["oldest_age_seconds"] == 0.0
