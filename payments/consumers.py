"""Live feeds over websockets: they subscribe and render, nothing else (STYLE 11).

- `/ws/events/` — every event: staff see every merchant (`?merchant=<id>`
  narrows to one), merchant users their own merchant only (asking for
  another is refused);
- `/ws/payments/<pi id>/` — one payment's timeline; another merchant's
  payment is "not found" (close 4404), as everywhere else.

Authentication is the Django session (AuthMiddlewareStack), the origin is
checked by AllowedHostsOriginValidator in config.asgi, the role here through
accounts.roles; a refused connection is closed before the handshake
completes, with a 44xx code naming why.

Each websocket text frame is one event,
`{"type": "event", "position": n, "event": {Stripe event}}`, encoded once by
the relay from the event's snapshot and sent as is: no query and no encoding
per message here. With `?batch=1` a client gets the events of one relay
batch as one `{"type": "batch", "frames": [event frame, ...]}` frame
(docs/events.md has the protocol).

Resuming: a client that reconnects with `?last_event_id=evt_…` first gets,
from the event log, every event in its scope published after that one, in
publication order, then live events — no gap, no duplicate. The cursor is the
outbox `position` (the relay's publication order; see
payments.services.outbox for why ids are not): the consumer joins its groups
*before* reading the log, so an event published meanwhile is either in the
log read or queued behind it, and what was already sent is dropped (see
`_FeedConsumer._fresh`). Live messages can be repeated by a relay that died
mid-batch (at least once); the same rule drops those.

Pushes reach a feed through its process's hub (payments.fanout), not a
channel of its own: the hub receives each push once per process and
`offer`s it to every local feed of its group, which queues it for its own
task (`_drain`). A feed whose queue outgrows `MAX_PENDING_EVENTS` — its
socket takes frames slower than they come — is closed with
`CLOSE_FELL_BEHIND`; the page reconnects with its last event id and the
log fills the gap (docs/events.md, "Hub").
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db.models import Max, TextField
from django.db.models.functions import Cast

from accounts import roles
from payments import fanout
from payments.models import OutboxMessage, PaymentIntent
from payments.relay import ensure_embedded_relay
from payments.services.outbox import (
    ALL_GROUP,
    EVENT_COLUMNS,
    event_items,
    merchant_group,
    payment_group,
    reading_published,
)

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_CURSOR = 4409
# Not a refusal (not 44xx): the page reconnects with its last event id.
CLOSE_FELL_BEHIND = 4503
REPLAY_CHUNK = 500
# Events a feed may have queued and not yet sent (payments.fanout hands it
# every push at once; its own task sends them). Ten relay batches: a page
# that lags by more is closed and resumes from the log rather than holding
# the frames in memory (the frames are shared with the other feeds until
# they have sent them, then held for this one alone).
MAX_PENDING_EVENTS = 2_000


# A pushed message's frames, once joined (`_frames_text`),
# and its items' summary (`_Summary.of_message`).
_FRAMES_TEXT = "_paylab_frames_text"
_SUMMARY = "_paylab_summary"


@dataclass(frozen=True)
class _Summary:
    """What `_FeedConsumer._fresh` needs of a list of items (in position order)."""

    ids: list[str]
    pairs: list[tuple[int, str]]
    first: int
    top: int

    @classmethod
    def of(cls, items: list[dict[str, Any]]) -> _Summary:
        pairs = [(item["position"], item["event_id"]) for item in items]
        return cls(
            ids=[event_id for _, event_id in pairs],
            pairs=pairs,
            first=pairs[0][0] if pairs else 0,
            top=max((p for p, _ in pairs), default=0),
        )

    @classmethod
    def of_message(cls, message: dict[str, Any]) -> _Summary:
        """Once per message per process: the hub (payments.fanout) hands the
        same message object to every feed of the process in the group."""
        summary: _Summary | None = message.get(_SUMMARY)
        if summary is None:
            summary = message[_SUMMARY] = cls.of(message["items"])
        return summary


def _frames_text(fresh: list[dict[str, Any]], message: dict[str, Any] | None) -> str:
    """The items' frames joined by commas, for a batch frame. The hub hands
    the one message object to every feed of the process in the group, so
    when a client lacks all of a pushed message's items — the usual case —
    they are joined once per process and kept on the message."""
    if message is None or fresh is not message["items"]:
        return ",".join(item["frame"] for item in fresh)
    text: str | None = message.get(_FRAMES_TEXT)
    if text is None:
        text = message[_FRAMES_TEXT] = ",".join(item["frame"] for item in fresh)
    return text


class _FeedConsumer(AsyncJsonWebsocketConsumer):
    """Shared: groups, replay after a cursor, dropping what was already sent."""

    # No channel-layer channel per feed: an alias that names no layer makes
    # Channels skip it; the hub (payments.fanout) receives for the process.
    channel_layer_alias = "paylab.feeds-receive-through-the-hub"

    groups_joined: list[str]
    # Which log rows the replay may read: a filter on OutboxMessage.
    scope_filter: dict[str, Any]
    # The last events sent (positions and ids, oldest first), and the
    # position below which everything is a repeat: see `_fresh`.
    recent_ids: set[str]
    recent: deque[tuple[int, str]]
    memory: int
    floor: int
    # The highest position sent (or known to precede this connection).
    top: int
    batch: bool
    # Pushes offered by the hub, not yet handled (`offer`, `_drain`), and
    # how many events they hold.
    inbox: deque[dict[str, Any]]
    pending: int
    drainer: asyncio.Task[None] | None
    # `start` is done: pushes are sent as they come (before, they wait).
    live: bool
    # The inbox overflowed during `start`: read the log again before going live.
    missed: bool
    closing: bool
    # Closing a feed that fell behind (a task: `offer` must not wait).
    closer: asyncio.Task[None] | None
    hub: fanout.Hub

    def query(self, name: str) -> str | None:
        values = parse_qs(self.scope.get("query_string", b"").decode()).get(name)
        return values[0] if values else None

    async def start(self, groups: list[str], scope_filter: dict[str, Any]) -> None:
        self.groups_joined = []
        self.scope_filter = scope_filter
        self.floor = self.top = 0
        self.recent_ids = set()
        self.recent = deque()
        self.inbox = deque()
        self.pending = 0
        self.drainer = self.closer = None
        self.live = self.missed = self.closing = False
        # More than one relay batch (see `_fresh`).
        self.memory = settings.PAYLAB_RELAY_BATCH + 64
        self.batch = self.query("batch") == "1"
        last_event_id = self.query("last_event_id")
        cursor = None
        if last_event_id:
            cursor = await self._position_of(last_event_id)
            if cursor is None:
                await self.close(code=CLOSE_BAD_CURSOR)
                return
        # Join first, read the log second: see the module docstring. Pushes
        # offered meanwhile wait in the inbox until the log is read.
        self.hub = fanout.hub()
        try:
            for group in groups:
                self.groups_joined.append(group)
                await self.hub.subscribe(group, self)
            ensure_embedded_relay()
            await self.accept()
            if cursor is not None:
                self.floor = cursor + 1
                self.top = cursor
                await self._catch_up()
            else:
                self.top = await self._top_position()
            while self.missed:
                # What the overflowing inbox let go is in the log by now.
                self.missed = False
                await self._catch_up()
        except BaseException:
            # The consumer ends without `disconnect`: leave the hub's groups
            # (a subscriber left behind would keep its group joined).
            await self._leave()
            raise
        self.live = True
        self._wake()

    def offer(self, message: dict[str, Any]) -> None:
        """The hub's hand-over (payments.fanout): queue, never wait — the
        hub offers the same push to every feed of the process in turn."""
        if self.closing:
            return
        size = len(message["items"])
        if self.pending + size > MAX_PENDING_EVENTS:
            self.inbox.clear()
            self.pending = 0
            if not self.live:
                self.missed = True
                return
            # It falls behind: the page resumes from the log with its cursor.
            self.closing = True
            self.closer = asyncio.get_running_loop().create_task(self._close_behind())
            return
        self.inbox.append(message)
        self.pending += size
        self._wake()

    def _wake(self) -> None:
        if self.live and self.inbox and self.drainer is None:
            self.drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Handle the queued pushes in order, in this feed's own task: a
        send that waits (a server holding back a slow socket's frames), or
        a gap read from the log, holds back this feed only. Whatever queued
        up while it was sending goes out together (`_push_all`): one frame
        for several pushes in batch mode."""
        try:
            while self.inbox and not self.closing:
                messages = list(self.inbox)
                self.inbox.clear()
                self.pending -= sum(len(message["items"]) for message in messages)
                await self._push_all(messages)
        except Exception:
            log.exception("live feed: a push failed; closing so that the page resumes")
            self.closing = True
            await self._close_behind()
        finally:
            self.drainer = None

    async def _close_behind(self) -> None:
        self.inbox.clear()
        self.pending = 0
        await self.close(code=CLOSE_FELL_BEHIND)

    async def _catch_up(self) -> None:
        """Send, from the log, what was published in scope after `top`."""
        after = self.top
        while True:
            missed = await self._published_after(after)
            await self._send(missed)
            if len(missed) < REPLAY_CHUNK:
                return
            after = missed[-1]["position"]

    @database_sync_to_async
    def _top_position(self) -> int:
        with reading_published():
            top = OutboxMessage.objects.aggregate(top=Max("position"))["top"]
        return int(top or 0)

    @database_sync_to_async
    def _position_of(self, event_id: str) -> int | None:
        with reading_published():
            return (
                OutboxMessage.objects.filter(event_id=event_id, position__isnull=False)
                .filter(**self.scope_filter)
                .values_list("position", flat=True)
                .first()
            )

    @database_sync_to_async
    def _published_after(self, position: int) -> list[dict[str, Any]]:
        # The relay's columns, the snapshot as the database's JSON text: a
        # replayed frame is byte for byte the one pushed live.
        with reading_published():
            rows = list(
                OutboxMessage.objects.filter(position__gt=position)
                .filter(**self.scope_filter)
                .annotate(snapshot=Cast("event__data", TextField()))
                .order_by("position")
                .values_list(
                    "position",
                    *(
                        "snapshot" if column == "data" else f"event__{column}"
                        for column in EVENT_COLUMNS
                    ),
                )[:REPLAY_CHUNK]
            )
        return event_items(rows)

    def _fresh(
        self, items: list[dict[str, Any]], summary: _Summary | None = None
    ) -> list[dict[str, Any]]:
        """The items (in position order) this client lacks, remembered as sent.

        Normally positions only grow, and anything at or below the last one
        sent is a repeat (a replayed event pushed live too, or a batch pushed
        again by a relay that died before committing). But that relay's batch
        was never committed, so the next relay may give its events other
        positions — an event it did not push can take a position already
        sent. So an item is a repeat if its event is among the last `memory`
        or so sent, or if its position is below `floor`: the cursor of a
        resumed feed, raised past the events that leave the memory (older
        than any batch a relay can publish again, since a batch holds fewer
        events than `memory`). Set operations keep the usual case — nothing
        seen — cheap: it runs for every client on every push. `summary`,
        the items' ids and positions, is computed once per pushed message in
        a process (`_Summary.of_message`): per client there is then no
        Python loop over the items, only set and deque operations."""
        if not items:
            return items
        known = summary or _Summary.of(items)
        if known.first >= self.floor and self.recent_ids.isdisjoint(known.ids):
            fresh, taken = items, known
        else:
            fresh = [
                item
                for item in items
                if item["event_id"] not in self.recent_ids and item["position"] >= self.floor
            ]
            taken = _Summary.of(fresh)
        self.top = max(self.top, taken.top)
        self.recent.extend(taken.pairs)
        self.recent_ids.update(taken.ids)
        if len(self.recent) > 2 * self.memory:
            # Forget the oldest in one go (amortised: once per `memory` items).
            kept = list(self.recent)[-self.memory :]
            forgotten = list(self.recent)[: -self.memory]
            self.floor = max(self.floor, max(p for p, _ in forgotten) + 1)
            self.recent = deque(kept)
            self.recent_ids = {event_id for _, event_id in kept}
        return fresh

    async def _send(self, items: list[dict[str, Any]]) -> None:
        """Send what the client lacks of `items` (read from the log)."""
        await self._send_fresh([(self._fresh(items), None)])

    async def _push_all(self, messages: list[dict[str, Any]]) -> None:
        """Send what the client lacks of pushed `messages`, in order. A
        message whose `prev` is past what this client has means a push to
        its group was dropped: what is gathered so far goes out, the gap is
        read from the log, then the rest follows."""
        pieces: list[tuple[list[dict[str, Any]], dict[str, Any] | None]] = []
        for message in messages:
            prev = message.get("prev")
            if prev is not None and prev > self.top:
                await self._send_fresh(pieces)
                pieces = []
                await self._catch_up()
            fresh = self._fresh(message["items"], _Summary.of_message(message))
            if fresh:
                pieces.append((fresh, message))
        await self._send_fresh(pieces)

    async def _send_fresh(
        self, pieces: list[tuple[list[dict[str, Any]], dict[str, Any] | None]]
    ) -> None:
        """Send fresh items — each piece the fresh part of a pushed message
        (or of a log read, `None`) — as a frame per event, or with
        `?batch=1` as one `{"type": "batch", "frames": [...]}` frame (each
        websocket message costs daphne far more than its bytes do)."""
        count = sum(len(fresh) for fresh, _ in pieces)
        if not count:
            return
        if self.batch and count > 1:
            frames = ",".join(_frames_text(fresh, message) for fresh, message in pieces)
            await self.send(text_data='{"type":"batch","frames":[' + frames + "]}")
            return
        for fresh, _ in pieces:
            for item in fresh:
                await self.send(text_data=item["frame"])

    async def disconnect(self, code: int) -> None:
        self.closing = True
        drainer = getattr(self, "drainer", None)
        if drainer is not None and drainer is not asyncio.current_task():
            drainer.cancel()
        await self._leave()

    async def _leave(self) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.hub.unsubscribe(group, self)
        self.groups_joined = []


class EventFeedConsumer(_FeedConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if not roles.any_role(user):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        wanted = self.query("merchant")
        scope = roles.merchant_scope(user)
        if scope is None and not wanted:
            await self.start([ALL_GROUP], {})
            return
        try:
            merchant_id = int(wanted) if wanted else scope
        except ValueError:
            merchant_id = None
        if merchant_id is None or not roles.can_view_merchant(user, merchant_id):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.start([merchant_group(merchant_id)], {"merchant_id": merchant_id})


class PaymentTimelineConsumer(_FeedConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if not roles.any_role(user):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        payment_id = self.scope["url_route"]["kwargs"]["payment_id"]
        merchant_id = await self._merchant_of(payment_id)
        if merchant_id is None or not roles.can_view_merchant(user, merchant_id):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.start([payment_group(payment_id)], {"event__payment_intent_id": payment_id})

    @database_sync_to_async
    def _merchant_of(self, payment_id: str) -> int | None:
        return (
            PaymentIntent.objects.filter(pk=payment_id)
            .values_list("merchant_id", flat=True)
            .first()
        )
