"""Saved first responses for `Idempotency-Key` (DESIGN rule 6).

The unique (merchant, key) constraint is what makes a duplicate impossible:
two concurrent requests with one key race on the insert, and the loser waits
for the winner's transaction, then replays its saved response.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Merchant


class IdempotencyKey(models.Model):
    class Status(models.TextChoices):
        IN_FLIGHT = "in_flight"
        COMPLETED = "completed"

    id = models.BigAutoField(primary_key=True)
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "key"], name="idempotency_key_unique_per_merchant"
            )
        ]
        indexes = [models.Index(fields=["created"], name="idempotency_created")]

    def __str__(self) -> str:
        return self.key
