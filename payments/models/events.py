"""The append-only event log and the transactional outbox (DESIGN rules 3, 7).

An Event is a Stripe event (`evt_…`, `payment_intent.succeeded`, …) with a
per-payment `sequence`, the status change it records, the object snapshot
as the API presented it then, and a `delta` of the projected amounts — from
which `payments.services.rebuild` recomputes every payment. Nothing updates
or deletes an event: the queryset and the model refuse, and the admin is
read-only.

Every event gets an OutboxMessage in the same transaction; relays claim
unpublished messages and push them to websockets and webhooks.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Merchant


class AppendOnlyError(Exception):
    pass


class AppendOnlyQuerySet(models.QuerySet["Event"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("The event log is append-only: events cannot be updated.")

    def delete(self) -> NoReturn:  # type: ignore[override]
        raise AppendOnlyError("The event log is append-only: events cannot be deleted.")


class Event(models.Model):
    id = models.CharField(primary_key=True, max_length=40)
    # No single-column indexes on these two: `event_merchant_id` (merchant,
    # id) and the unique (payment_intent, sequence) lead with them and answer
    # every lookup by either (and the foreign keys' own checks); one index
    # less of each (plus the varchar `_like` twin) on the largest table.
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    payment_intent = models.ForeignKey(
        "payments.PaymentIntent",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,
    )
    sequence = models.PositiveIntegerField(null=True, blank=True)
    type = models.CharField(max_length=64)
    from_status = models.CharField(max_length=32, blank=True, default="")
    to_status = models.CharField(max_length=32, blank=True, default="")
    data = models.JSONField()
    # Changes to the payment's projected amounts carried by this event, e.g.
    # {"amount_received": 1000, "amount_capturable": -1000}.
    delta = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["payment_intent", "sequence"],
                name="event_sequence_unique_per_payment",
                condition=Q(payment_intent__isnull=False),
            )
        ]
        indexes = [
            models.Index(fields=["merchant", "-id"], name="event_merchant_id"),
            models.Index(fields=["merchant", "type", "-id"], name="event_merchant_type"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("The event log is append-only: events cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("The event log is append-only: events cannot be deleted.")


class OutboxMessage(models.Model):
    """One event waiting to leave the database (websockets, webhooks)."""

    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+")
    merchant_id = models.BigIntegerField()
    created = models.DateTimeField(default=timezone.now)
    claimed_by = models.CharField(max_length=64, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The order of publication, assigned by the one relay publishing at a
    # time (payments.services.outbox): websocket clients resume after the
    # position of the last event they saw. Ids are not that order — on
    # PostgreSQL a lower id may commit after a higher one.
    position = models.BigIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Relays scan only the unpublished tail; the index stays small
            # however long the published history grows.
            models.Index(
                fields=["id"], name="outbox_unpublished", condition=Q(published_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"outbox {self.pk} ({self.event_id})"
