"""The outbox relay: committed events out to websockets and webhooks (DESIGN rule 7).

`append_event` writes an OutboxMessage in the payment's transaction. A relay
publishes unpublished messages, oldest id first, in one transaction:

1. on PostgreSQL it takes a transaction-scoped advisory lock
   (`pg_advisory_xact_lock`), so exactly one relay publishes at a time and
   the others wait their turn, then find those rows published (a relay
   killed mid-batch drops its connection; PostgreSQL rolls its transaction
   back and frees the lock for the next). SQLite needs no lock: writers are
   serialised by `BEGIN IMMEDIATE`, which the settings make every
   transaction take;
2. it picks the rows with `FOR UPDATE SKIP LOCKED` (PostgreSQL) and marks
   each with a conditional UPDATE (`… WHERE published_at IS NULL`), so even
   without the lock no row is published by two relays;
3. it gives each row the next `position` — the order of publication;
4. it owes each event to every enabled endpoint subscribed to its type
   (WebhookDelivery, unique per (endpoint, event): a re-publish never owes
   twice) and queues their delivery tasks on commit;
5. it pushes the batch to the channel-layer groups `events.all`,
   `merchant.<id>` and `payment.<pi id>`: one message per group, holding
   that group's events, each as its websocket frame (the Stripe snapshot,
   JSON-encoded once for every client), and `prev`, the last position this
   process pushed to the group (consumers detect a dropped message by it);
6. it commits, on PostgreSQL asynchronously (`synchronous_commit = off`,
   this transaction only): losing the marks to a PostgreSQL crash only
   publishes the rows again, and the lock is not held for a disk sync.

Why push before commit, inside the lock: the push order is then exactly the
`position` order, across relays, which is what lets a reconnecting websocket
resume after the position of the last event it saw with no gap and no
duplicate (payments.consumers). A relay that dies after pushing and before
committing leaves the rows unpublished, and they are pushed again — at least
once; consumers drop what they have already sent. If the channel layer is
down (Redis stopped) the push raises, nothing is marked, and the rows wait
for the next round: a delay, never a loss.

Websockets read the log through `reading_published`, which waits for an
in-flight batch to commit, so a push they missed while joining is in what
they read.

Why ids are not the cursor: on PostgreSQL a lower id may commit after a
higher one has been published; the position is assigned at publication.

Who runs a relay (docs: settings PAYLAB_RELAY_*):
- embedded mode: the in-memory channel layer exists only inside the daphne
  process, so daphne runs the loop itself (payments.relay.EmbeddedRelay,
  started by the first websocket connect, polling every ~50 ms and woken at
  once by commits made in that process). The worker's beat sweep publishes
  only rows older than PAYLAB_OUTBOX_SWEEP_GRACE_SECONDS, so webhooks still
  leave when no daphne runs;
- full mode: `manage.py relay` (a Procfile process), woken by a Redis
  PUBLISH sent after each commit and polling as a fallback, plus the same
  sweep task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from payments.models import Event, OutboxMessage, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

# Any constant shared by every relay; "PAYOUTBX" in ASCII.
ADVISORY_LOCK_KEY = 0x5041594F55544258 & 0x7FFFFFFFFFFFFFFF
NUDGE_CHANNEL = "paylab:outbox:nudge"
ALL_GROUP = "events.all"
# The pushes' type; payments.fanout hands them to the feeds (consumers' `offer`).
PUSH_TYPE = "events.push"


def merchant_group(merchant_id: int) -> str:
    return f"merchant.{merchant_id}"


def payment_group(payment_intent_id: str) -> str:
    return f"payment.{payment_intent_id}"


def relay_name(kind: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{kind}"[:64]


# The Stripe event object (payments.presenters.event) around a snapshot that
# is already JSON text: the relay reads the snapshot as the database's text
# and splices it in, so an event is JSON-encoded once, in the relay, with no
# decoding of its snapshot (docs/benchmarks.md, "Events").
_FRAME = (
    '{{"type":"event","position":{position},"event":{{"id":{id},"object":"event",'
    '"api_version":"2024-06-20","created":{created},"data":{{"object":{data}}},'
    '"livemode":false,"pending_webhooks":0,'
    '"request":{{"id":{request_id},"idempotency_key":{idempotency_key}}},"type":{type}}}}}'
)
_dumps = json.JSONEncoder(separators=(",", ":")).encode

# What `_item` takes, in this order: the columns the relay and the replay read.
EVENT_COLUMNS = (
    "id",
    "merchant_id",
    "payment_intent_id",
    "type",
    "data",
    "request_id",
    "idempotency_key",
    "created",
)


def _item(
    position: int,
    event_id: str,
    merchant_id: int,
    payment_intent: str | None,
    type_: str,
    data: str,
    request_id: str,
    idempotency_key: str,
    created: datetime,
) -> dict[str, Any]:
    """One event as consumers receive it: the websocket frame, encoded once
    here for every client (no query and no JSON encoding per message in the
    consumers), and what they filter on. `data` is the snapshot as JSON text."""
    frame = _FRAME.format(
        position=position,
        id=_dumps(event_id),
        created=_unix(created),
        data=data,
        request_id=_dumps(request_id or None),
        idempotency_key=_dumps(idempotency_key or None),
        type=_dumps(type_),
    )
    return {
        "position": position,
        "event_id": event_id,
        "merchant_id": merchant_id,
        "payment_intent": payment_intent,
        "frame": frame,
    }


def _unix(moment: datetime | str) -> int:
    # A raw SQLite cursor may give the text, naive (UTC: USE_TZ).
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def push_item(event: Event, position: int) -> dict[str, Any]:
    """`_item` from an Event instance."""
    return _item(
        position,
        event.pk,
        event.merchant_id,
        event.payment_intent_id,
        event.type,
        _dumps(event.data),
        event.request_id,
        event.idempotency_key,
        event.created,
    )


def event_items(rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """`_item` for rows of (position, *EVENT_COLUMNS), the snapshot as text."""
    return [_item(*row) for row in rows]


# --- Publishing ----------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    count: int
    deliveries: list[int]


# Held by a relay of this process while it publishes, and by consumers while
# they read what was published: on SQLite a reader does not wait for the
# writer, and the only pushes that reach this process's pages come from
# this process (see `reading_published`).
_publishing = threading.Lock()


def _take_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s), set_config('synchronous_commit', 'off', true)",
                [ADVISORY_LOCK_KEY],
            )


@contextmanager
def reading_published() -> Iterator[None]:
    """Read the published log only between two relay batches.

    A relay pushes a batch before it commits it; a websocket joining its
    groups during that window would miss the pushes and, reading the log,
    not yet see the rows. Reading inside this barrier waits for the batch
    to commit: a shared advisory lock against the relays' exclusive one on
    PostgreSQL, the process lock otherwise (in embedded mode only daphne's
    own relay pushes to its pages)."""
    with _publishing:
        if connection.vendor != "postgresql":
            yield
            return
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [ADVISORY_LOCK_KEY])
            yield


def _claim(limit: int, cutoff: datetime | None, now: datetime, relay: str) -> list[tuple[Any, ...]]:
    """Pick, number and mark up to `limit` unpublished rows, oldest id first,
    and read their events: rows of (position, *EVENT_COLUMNS), the snapshot
    as JSON text, in position order. The caller holds the relays' lock.

    PostgreSQL: one statement (one round trip, whatever the batch size).
    SQLite (embedded mode, writers serialised): pick, mark, read."""
    outbox_table = OutboxMessage._meta.db_table
    event_table = Event._meta.db_table
    columns = ", ".join(f"e.{c}" for c in EVENT_COLUMNS)
    young = "" if cutoff is None else " AND created <= %s"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""
                WITH picked AS (
                    SELECT id FROM {outbox_table}
                    WHERE published_at IS NULL{young}
                    ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
                ), numbered AS (
                    SELECT id, row_number() OVER (ORDER BY id)
                        + (SELECT coalesce(max(position), 0) FROM {outbox_table}) AS position
                    FROM picked
                ), marked AS (
                    UPDATE {outbox_table} o
                    SET position = n.position, published_at = %s, claimed_by = %s,
                        claimed_until = %s, attempts = o.attempts + 1
                    FROM numbered n
                    WHERE o.id = n.id AND o.published_at IS NULL
                    RETURNING o.position, o.event_id
                )
                SELECT m.position, {columns}
                FROM marked m JOIN {event_table} e ON e.id = m.event_id
                ORDER BY m.position
                """,  # noqa: S608 (table and column names from the models)
                [*([] if cutoff is None else [cutoff]), limit, now, relay, now],
            )
            return cursor.fetchall()
        cursor.execute(
            f"SELECT id FROM {outbox_table} WHERE published_at IS NULL{young} "  # noqa: S608
            "ORDER BY id LIMIT %s",
            [*([] if cutoff is None else [cutoff]), limit],
        )
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return []
        cursor.execute(f"SELECT coalesce(max(position), 0) FROM {outbox_table}")  # noqa: S608
        base = cursor.fetchone()[0]
        cursor.executemany(
            f"UPDATE {outbox_table} SET position = %s, published_at = %s, claimed_by = %s, "  # noqa: S608
            "claimed_until = %s, attempts = attempts + 1 "
            "WHERE id = %s AND published_at IS NULL",
            [(base + i + 1, now, relay, now, pk) for i, pk in enumerate(ids)],
        )
        marks = ", ".join(["%s"] * len(ids))
        cursor.execute(
            f"SELECT o.position, {columns} FROM {outbox_table} o "  # noqa: S608
            f"JOIN {event_table} e ON e.id = o.event_id "
            f"WHERE o.id IN ({marks}) AND o.position > %s ORDER BY o.position",
            [*ids, base],
        )
        return cursor.fetchall()


def _owe_webhooks(events: list[tuple[str, int, str]], now: datetime) -> list[int]:
    """Create the deliveries these events — (id, merchant id, type) — owe;
    ids of those not yet tried."""
    merchants = sorted({merchant_id for _, merchant_id, _ in events})
    # Plain SQL, no model instances: it runs for every batch, and most
    # batches owe nothing (docs/benchmarks.md, "Events").
    marks = ", ".join(["%s"] * len(merchants))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, merchant_id, enabled_events FROM {WebhookEndpoint._meta.db_table} "  # noqa: S608
            f"WHERE merchant_id IN ({marks}) AND status = %s AND deleted_at IS NULL",
            [*merchants, WebhookEndpoint.Status.ENABLED],
        )
        found = cursor.fetchall()
    endpoints: dict[int, list[tuple[str, list[str]]]] = defaultdict(list)
    for endpoint_id, merchant_id, enabled_events in found:
        endpoints[merchant_id].append((endpoint_id, json.loads(enabled_events)))
    if not endpoints:
        return []
    owed = [
        WebhookDelivery(
            endpoint_id=endpoint_id,
            event_id=event_id,
            merchant_id=merchant_id,
            next_attempt_at=now,
            created=now,
        )
        for event_id, merchant_id, type_ in events
        for endpoint_id, enabled_events in endpoints.get(merchant_id, ())
        # WebhookEndpoint.subscribes_to
        if "*" in enabled_events or type_ in enabled_events
    ]
    if not owed:
        return []
    # A re-publish (a relay that died before committing, or a sweep racing
    # the relay on SQLite) finds the rows there: the constraint keeps one.
    WebhookDelivery.objects.bulk_create(owed, ignore_conflicts=True)
    return list(
        WebhookDelivery.objects.filter(
            event_id__in=[event_id for event_id, _, _ in events],
            status=WebhookDelivery.Status.PENDING,
            attempts=0,
        ).values_list("pk", flat=True)
    )


def _push(items: list[dict[str, Any]]) -> None:
    """One channel-layer message per group per batch, carrying that group's
    items in position order (each consumer is in exactly one group, so it
    sees its items in order). Batching matters under load: one group_send
    reaches every member in a daphne process through one Redis message, and
    each consumer then handles one message per batch rather than per event."""
    layer = get_channel_layer()
    if layer is None or not items:
        return
    batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        batches[ALL_GROUP].append(item)
        batches[merchant_group(item["merchant_id"])].append(item)
        if item["payment_intent"]:
            batches[payment_group(item["payment_intent"])].append(item)

    with _last_pushed_lock:
        messages: dict[str, dict[str, Any]] = {
            # `group`: a process's one hub (payments.fanout) is in many
            # groups and routes each message to that group's feeds.
            group: {
                "type": PUSH_TYPE,
                "group": group,
                "items": batch,
                "prev": _last_pushed.get(group),
            }
            for group, batch in batches.items()
        }

    async def send(group: str, message: dict[str, Any]) -> None:
        await layer.group_send(group, message)
        _remember_pushed(group, batches[group][-1]["position"])

    async def send_all() -> None:
        # Groups are independent (each consumer is in one), so their sends
        # overlap: a batch of 50 payments is ~52 groups, most of them payment
        # groups nobody watches, each two Redis round trips; in sequence
        # those round trips were most of a batch's push time.
        await asyncio.gather(*(send(group, message) for group, message in messages.items()))

    if isinstance(layer, InMemoryChannelLayer):
        # Its queues belong to the loop of the process's pages (daphne's):
        # async_to_sync from the relay's worker thread runs on that loop.
        async_to_sync(send_all)()
        return
    future = asyncio.run_coroutine_threadsafe(send_all(), _push_loop())
    try:
        future.result(timeout=PUSH_TIMEOUT_SECONDS)
    except BaseException:
        # Nothing is marked (the caller's transaction rolls back): the rows
        # are published again, a delay, not a loss.
        future.cancel()
        raise


PUSH_TIMEOUT_SECONDS = 10.0

# The last position this process pushed to each group, sent with the next
# message to that group as `prev`. A channel layer drops messages to a
# channel that is full (its capacity: a page's process falling behind), and
# nothing else would tell: a consumer whose last position is below `prev`
# has missed a message and reads the gap from the log. Best effort by
# design — another relay's pushes are unknown here, a restart forgets —
# which only ever hides a gap the cursor then still covers on reconnect;
# it never invents one that costs more than a read. Bounded: payment groups
# come and go.
_last_pushed: OrderedDict[str, int] = OrderedDict()
_last_pushed_lock = threading.Lock()
LAST_PUSHED_GROUPS = 10_000


def _remember_pushed(group: str, position: int) -> None:
    with _last_pushed_lock:
        _last_pushed[group] = position
        _last_pushed.move_to_end(group)
        while len(_last_pushed) > LAST_PUSHED_GROUPS:
            _last_pushed.popitem(last=False)


_loop_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None


def _push_loop() -> asyncio.AbstractEventLoop:
    """A long-lived event loop, on a thread of its own, for pushes to the
    Redis layer. async_to_sync from a plain thread (`manage.py relay`, a
    worker) would make a new loop per batch, and channels_redis keeps its
    connections per loop: every batch would connect to Redis afresh (a
    profile of the relay at 200 payments/s showed that). Per process: a
    forked worker makes its own."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop[0] != os.getpid() or _loop[1].is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="paylab-push", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]


def outbox_publish(
    *,
    relay: str,
    limit: int | None = None,
    older_than: float = 0.0,
    now: datetime | None = None,
    on_deliveries: Callable[[list[int]], None] | None = None,
) -> Published:
    """Publish up to `limit` unpublished messages, oldest first (see the module
    docstring for the steps and why). Only rows created at least `older_than`
    seconds ago are taken. Returns how many were published and the webhook
    deliveries created; `on_deliveries` is called with those after commit
    (default: queue one delivery task each)."""
    limit = limit or settings.PAYLAB_RELAY_BATCH
    now = now or timezone.now()
    # A read with no lock first: an idle relay polling every 50 ms must not
    # take SQLite's write lock (BEGIN IMMEDIATE) or PostgreSQL's lock each time.
    # (Clock-stamped services may stamp rows in the future: no age filter
    # unless asked for one.)
    cutoff = now - timedelta(seconds=older_than) if older_than else None
    if not _any_pending(cutoff):
        return Published(0, [])
    with _publishing, transaction.atomic():
        _take_lock()
        rows = _claim(limit, cutoff, now, relay)
        if not rows:
            return Published(0, [])
        deliveries = _owe_webhooks([(row[1], row[2], row[4]) for row in rows], now)
        _push(event_items(rows))
        callback = on_deliveries or _queue_deliveries
        if deliveries:
            transaction.on_commit(lambda: callback(deliveries))
    return Published(len(rows), deliveries)


def _any_pending(cutoff: datetime | None) -> bool:
    table = OutboxMessage._meta.db_table
    young = "" if cutoff is None else " AND created <= %s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {table} WHERE published_at IS NULL{young} LIMIT 1",  # noqa: S608
            [] if cutoff is None else [cutoff],
        )
        return cursor.fetchone() is not None


def _queue_deliveries(delivery_ids: list[int]) -> None:
    from payments import tasks

    for delivery_id in delivery_ids:
        try:
            tasks.deliver_webhook.delay(delivery_id)
        except Exception:  # broker down: the delivery sweep picks it up
            log.warning("webhook delivery %s not queued; the sweep will", delivery_id)
            return


# --- Lag -------------------------------------------------------------------------


def outbox_lag(now: datetime | None = None) -> dict[str, Any]:
    """Backlog and age of the oldest unpublished message (for /readyz)."""
    now = now or timezone.now()
    unpublished = OutboxMessage.objects.filter(published_at__isnull=True)
    oldest = unpublished.aggregate(oldest=Min("created"))["oldest"]
    return {
        "backlog": unpublished.count(),
        "oldest_age_seconds": round((now - oldest).total_seconds(), 3) if oldest else 0.0,
    }


# --- Nudges ----------------------------------------------------------------------

_local_wakers: list[Callable[[], None]] = []
_redis_lock = threading.Lock()
_redis_client: Any = None


def add_local_waker(wake: Callable[[], None]) -> None:
    """An in-process relay (daphne, embedded mode) asks to be woken by commits."""
    _local_wakers.append(wake)


def remove_local_waker(wake: Callable[[], None]) -> None:
    if wake in _local_wakers:
        _local_wakers.remove(wake)


def _redis() -> Any:
    global _redis_client
    with _redis_lock:
        if _redis_client is None:
            import redis

            _redis_client = redis.Redis.from_url(
                str(settings.REDIS_URL), socket_timeout=0.2, socket_connect_timeout=0.2
            )
        return _redis_client


def nudge() -> None:
    """Wake the relays now: in-process ones directly, others by a Redis
    PUBLISH (one round trip per transaction). A lost nudge costs one poll
    interval, never an event."""
    for wake in list(_local_wakers):
        wake()
    if settings.REDIS_URL:
        try:
            _redis().publish(NUDGE_CHANNEL, b"1")
        except Exception:  # Redis down: the relays' polling covers it
            log.debug("outbox nudge not sent", exc_info=True)


def nudge_on_commit() -> None:
    """Schedule one nudge for the current transaction, however many events it appends."""
    if not connection.in_atomic_block:
        nudge()
        return
    # Entries are (savepoint ids, callable, robust).
    if any(entry[1] is nudge for entry in connection.run_on_commit):
        return
    transaction.on_commit(nudge)
