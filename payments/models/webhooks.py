"""Webhook endpoints and the record of every delivery (DESIGN rule 7).

A WebhookEndpoint is Stripe's `we_…` object: a URL, the event types it wants
(`["*"]` for all), a `whsec_…` signing secret. A WebhookDelivery is one event
owed to one endpoint; `(endpoint, event)` is unique, so a relay publishing an
event twice (at-least-once) never owes it twice. Every HTTP try is a
WebhookAttempt, kept for the merchant to read.

Endpoints are soft-deleted (`deleted_at`): their deliveries and attempts stay
as history, and the API answers "no such webhook_endpoint" as Stripe does.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Merchant
from payments.models.events import Event


class WebhookEndpoint(models.Model):
    class Status(models.TextChoices):
        ENABLED = "enabled"
        DISABLED = "disabled"

    id = models.CharField(primary_key=True, max_length=40)
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=5000, blank=True, default="")
    enabled_events = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENABLED)
    secret = models.CharField(max_length=80)
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)
    # When the endpoint was last (re-)enabled: it is owed the events published
    # since then (`manage.py verify` checks exactly that).
    enabled_at = models.DateTimeField(default=timezone.now)
    # Set on the first failed attempt of a run of failures, cleared by a
    # success; an endpoint failing for PAYLAB_WEBHOOK_DISABLE_AFTER is
    # disabled and `disabled_reason` says why.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["merchant", "-id"], name="webhook_endpoint_merchant")]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"

    def subscribes_to(self, event_type: str) -> bool:
        return "*" in self.enabled_events or event_type in self.enabled_events


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        # Retries exhausted, or the endpoint was disabled or deleted.
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+")
    merchant_id = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker holds a delivery while its HTTP request is in flight; a crashed
    # worker's lease runs out and the sweep hands the delivery to another.
    locked_until = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_unique")
        ]
        indexes = [
            # The sweep reads only pending deliveries that are due.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} {self.event_id} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.PROTECT, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    created = models.DateTimeField(default=timezone.now)
    url = models.URLField(max_length=2048)
    request_headers = models.JSONField(default=dict)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.status_code or self.error}"
