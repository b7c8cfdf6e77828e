"""Simulated processors (acquirers) as data, and what routing reads.

- `Processor`: a profile — methods, currencies, amount limits, latency
  (p50/p99), its own failure rates, fees per currency, authorisation
  lifetime and breaker thresholds. Editable in the admin, imported and
  exported as JSON (`manage.py processors`).
- `RoutingRule`: ordered conditions → weighted target processors.
- `ProcessorBreaker`: the circuit breaker of one processor, one row shared by
  every process and changed only under `select_for_update`
  (`payments.services.processors`).
- `ProcessorOutage`: a scheduled outage or brownout for a time window.
- `ProcessorEvent`: the append-only log of operational events
  (`paylab.processor.circuit_opened`, …). Processors belong to no merchant,
  so these are not `Event`s (whose merchant is required and which webhooks
  and merchant feeds publish): a separate table keeps merchants' event
  streams free of PayLab's own operations.
- `PendingAuthorization`: a confirmation waiting on its simulated processor
  (or a UPI payment waiting to settle): the recorded attempt plan, applied
  by a short second transaction when it is due.

Rates are basis points (1/100 of a percent) so no float reaches the
database; fees are integers (DESIGN rule 1).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.models import Merchant
from payments.models.events import AppendOnlyError

BASIS_POINTS = [MinValueValidator(0), MaxValueValidator(10_000)]


def _default_methods() -> list[str]:
    return ["card"]


def _default_fees() -> dict[str, Any]:
    return {"default": {"percent_bp": 290, "fixed": 30}}


class Processor(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    display_name = models.CharField(max_length=100, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    enabled = models.BooleanField(default=True)
    # Lower goes first when no routing rule matches.
    priority = models.PositiveIntegerField(default=100)
    methods = models.JSONField(default=_default_methods, help_text='e.g. ["card", "upi", "wallet"]')
    currencies = models.JSONField(
        default=list, blank=True, help_text="lower-case ISO codes; [] accepts every currency"
    )
    min_amount = models.BigIntegerField(default=0, help_text="minor units; 0 for no minimum")
    max_amount = models.BigIntegerField(default=0, help_text="minor units; 0 for no maximum")
    latency_p50_ms = models.PositiveIntegerField(default=0)
    latency_p99_ms = models.PositiveIntegerField(default=0)
    soft_decline_rate_bp = models.PositiveIntegerField(default=0, validators=BASIS_POINTS)
    timeout_rate_bp = models.PositiveIntegerField(default=0, validators=BASIS_POINTS)
    unavailable_rate_bp = models.PositiveIntegerField(default=0, validators=BASIS_POINTS)
    # How long PayLab waits before declaring a timeout.
    timeout_ms = models.PositiveIntegerField(default=3_000)
    # {"default": {"percent_bp": 290, "fixed": 30}, "jpy": {"percent_bp": 360, "fixed": 0}}:
    # `fixed` in the currency's minor units, except under "default", where it
    # is hundredths of a major unit (scaled by each currency's exponent).
    fees = models.JSONField(default=_default_fees)
    authorization_lifetime_hours = models.PositiveIntegerField(default=168)
    breaker_failure_threshold = models.PositiveIntegerField(default=5)
    # …and those failures at least this share of the window's attempts (0: the count alone).
    breaker_failure_rate_bp = models.PositiveIntegerField(default=1_000, validators=BASIS_POINTS)
    breaker_window_seconds = models.PositiveIntegerField(default=60)
    breaker_open_seconds = models.PositiveIntegerField(default=30)
    breaker_half_open_probes = models.PositiveIntegerField(default=1)
    breaker_close_after_successes = models.PositiveIntegerField(default=2)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["priority", "name"]
        constraints = [
            models.CheckConstraint(
                name="processor_p99_ge_p50",
                condition=models.Q(latency_p99_ms__gte=models.F("latency_p50_ms")),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RoutingRule(models.Model):
    """Conditions (empty = any) → weighted targets; the lowest position wins."""

    name = models.CharField(max_length=100, unique=True)
    position = models.PositiveIntegerField(default=100)
    enabled = models.BooleanField(default=True)
    bin_prefixes = models.JSONField(default=list, blank=True)
    min_amount = models.BigIntegerField(null=True, blank=True)
    max_amount = models.BigIntegerField(null=True, blank=True)
    currencies = models.JSONField(default=list, blank=True)
    methods = models.JSONField(default=list, blank=True)
    merchants = models.ManyToManyField(Merchant, blank=True, related_name="+")
    # [{"processor": "swift", "weight": 70}, {"processor": "ironbank", "weight": 30}]
    targets = models.JSONField(default=list)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class ProcessorBreaker(models.Model):
    processor = models.OneToOneField(
        Processor, primary_key=True, on_delete=models.CASCADE, related_name="breaker"
    )
    state = models.CharField(max_length=16, default="closed")
    # `payments.processors.breaker.BreakerState.as_dict()`; times are Unix seconds.
    data = models.JSONField(default=dict, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.processor_id}: {self.state}"


class ProcessorOutage(models.Model):
    class Kind(models.TextChoices):
        OUTAGE = "outage"
        BROWNOUT = "brownout"

    processor = models.ForeignKey(Processor, on_delete=models.CASCADE, related_name="outages")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.OUTAGE)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    # An outage fails every request (10 000 bp); a brownout some of them, slower.
    error_rate_bp = models.PositiveIntegerField(default=10_000, validators=BASIS_POINTS)
    error_code = models.CharField(
        max_length=32,
        default="processor_unavailable",
        choices=[("processor_unavailable", "processor_unavailable"), ("timeout", "timeout")],
    )
    latency_multiplier_pct = models.PositiveIntegerField(default=100)
    note = models.CharField(max_length=200, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["ends_at"], name="outage_ends_at")]
        constraints = [
            models.CheckConstraint(
                name="outage_ends_after_start",
                condition=models.Q(ends_at__gt=models.F("starts_at")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.processor_id} {self.starts_at:%Y-%m-%d %H:%M}"


class ProcessorEventQuerySet(models.QuerySet["ProcessorEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Processor events are append-only.")

    def delete(self) -> NoReturn:  # type: ignore[override]
        raise AppendOnlyError("Processor events are append-only.")


class ProcessorEvent(models.Model):
    id = models.CharField(primary_key=True, max_length=40)
    processor = models.CharField(max_length=64, db_index=True)
    type = models.CharField(max_length=64)
    from_state = models.CharField(max_length=16, blank=True, default="")
    to_state = models.CharField(max_length=16, blank=True, default="")
    reason = models.CharField(max_length=300, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    objects = ProcessorEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Processor events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Processor events are append-only.")


class PendingAuthorization(models.Model):
    """A payment in `processing` while its processor (or UPI) answers."""

    class Kind(models.TextChoices):
        CARD = "card"  # a confirmation awaiting its simulated latency
        ASYNC = "async"  # a UPI payment settling later

    payment_intent = models.OneToOneField(
        "payments.PaymentIntent", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    merchant_id = models.BigIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CARD)
    outcome = models.JSONField()
    due_at = models.DateTimeField()
    # To complete the Idempotency-Key record in the transaction that applies
    # the outcome (payments.services.idempotency).
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    expand = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="pending_auth_due")]

    def __str__(self) -> str:
        return f"pending {self.payment_intent_id}"
