"""Payment intents and what hangs off them: charges, refunds, disputes, 3DS.

The PaymentIntent row is a projection of its event log (DESIGN rule 3):
only `payments.services.transition` writes its status and amounts, in the
transaction that appends the events. The check constraints keep the money
invariants true even against a bug: refunded ≤ received ≤ amount.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone

from accounts.models import Merchant
from payments.models.customers import Customer, PaymentMethod
from payments.state_machine import Status


class CaptureMethod(models.TextChoices):
    AUTOMATIC = "automatic"
    AUTOMATIC_ASYNC = "automatic_async"
    MANUAL = "manual"


class PaymentIntent(models.Model):
    id = models.CharField(primary_key=True, max_length=40)
    # Indexed by `pi_merchant_id` and the other (merchant, …) indexes below.
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="payment_intents", db_index=False
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=32, choices=Status.choices)
    capture_method = models.CharField(
        max_length=16, choices=CaptureMethod.choices, default=CaptureMethod.AUTOMATIC_ASYNC
    )
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="payment_intents"
    )
    payment_method = models.ForeignKey(
        PaymentMethod, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payment_method_types = models.JSONField(default=list)
    # The card of the latest attempt, copied from its payment method by the
    # write path (`payments.services.transition`) whenever one is set, and
    # kept when a failed confirmation clears `payment_method` (as Stripe
    # does): "the card last tried", so the explorer finds a declined
    # payment by its card. Blank for non-card methods and before any.
    # Internal: not part of the Stripe object.
    card_brand = models.CharField(max_length=20, blank=True, default="")
    card_last4 = models.CharField(max_length=4, blank=True, default="")
    description = models.CharField(max_length=1000, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    receipt_email = models.EmailField(blank=True, default="")
    statement_descriptor = models.CharField(max_length=22, blank=True, default="")
    return_url = models.URLField(max_length=2000, blank=True, default="")
    client_secret = models.CharField(max_length=80)
    amount_capturable = models.BigIntegerField(default=0)
    amount_received = models.BigIntegerField(default=0)
    amount_refunded = models.BigIntegerField(default=0)
    amount_disputed = models.BigIntegerField(default=0)
    last_payment_error = models.JSONField(null=True, blank=True)
    next_action = models.JSONField(null=True, blank=True)
    latest_charge = models.ForeignKey(
        "payments.Charge", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    processor = models.CharField(max_length=64, blank=True, default="")
    canceled_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.CharField(max_length=32, blank=True, default="")
    authorization_expires_at = models.DateTimeField(null=True, blank=True)
    # Optimistic version and the last event sequence: both bump with every
    # transition, under the row lock.
    version = models.PositiveIntegerField(default=0)
    event_sequence = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "-id"], name="pi_merchant_id"),
            models.Index(fields=["merchant", "status", "-id"], name="pi_merchant_status"),
            # The dashboard explorer pages by (created, id) with a keyset, for
            # one merchant or for staff across all: an index range scan per page
            # however deep, at 10 M rows.
            models.Index(fields=["merchant", "-created", "-id"], name="pi_merchant_created"),
            models.Index(fields=["-created", "-id"], name="pi_created"),
            # Issue 7 (migration 0008): the currency filter walks its own
            # (created, id) range, so a currency with few or no payments is
            # an empty range, not a walk of all 10 M; the amount sort pages
            # by (amount, id) with the same keyset, and the amount range
            # filter is a range of it when it is selective.
            models.Index(fields=["currency", "-created", "-id"], name="pi_currency_created"),
            models.Index(fields=["-amount", "-id"], name="pi_amount"),
            # Migration 0009: the explorer's brand filter and last4 search
            # read the intent's own card columns, so each is one range of
            # (card, created, id) that stops after a page — a brand or last4
            # with few or no payments is a short or empty range (through the
            # payment method, a last4 many detached methods carry walked all
            # 10 M intents). No (merchant, card, …) variant: a merchant's
            # page walks the same range filtering on merchant_id, or the
            # planner walks `pi_merchant_created` filtering on the card when
            # the card is common; each variant would be one more B-tree
            # entry per row version written. Not partial on non-blank: the
            # non-card share is small, and a blank value is never searched.
            models.Index(fields=["card_last4", "-created", "-id"], name="pi_card_last4"),
            models.Index(fields=["card_brand", "-created", "-id"], name="pi_card_brand"),
            # The explorer's email search also matches the receipt email; most
            # payments have none, so only those that do are indexed. (Tried
            # without the condition: the '' majority then
            # skews the estimate to ~50,000 rows a value and the planner walks
            # (created, id) instead; partial, the estimate is the default
            # ~4,500 and the plan a bitmap OR, 0.4 ms of work at 10 M.) The
            # GIN index on `metadata` for its metadata search is
            # PostgreSQL-only: migration 0006, outside the model state.
            models.Index(
                Upper("receipt_email"),
                name="pi_receipt_email",
                condition=~Q(receipt_email=""),
            ),
            # The expiry sweep reads only authorised, uncaptured payments.
            models.Index(
                fields=["authorization_expires_at"],
                name="pi_auth_expiry",
                condition=Q(status="requires_capture"),
            ),
        ]
        constraints = [
            models.CheckConstraint(name="pi_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="pi_received_le_amount",
                condition=Q(amount_received__gte=0) & Q(amount_received__lte=F("amount")),
            ),
            models.CheckConstraint(
                name="pi_refunded_le_received",
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=F("amount_received")),
            ),
            models.CheckConstraint(
                name="pi_capturable_le_amount",
                condition=Q(amount_capturable__gte=0) & Q(amount_capturable__lte=F("amount")),
            ),
        ]

    def __str__(self) -> str:
        return self.id


class Charge(models.Model):
    """One confirmation attempt of a payment intent (its `latest_charge`)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=40)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="charges")
    payment_intent = models.ForeignKey(
        PaymentIntent, on_delete=models.PROTECT, related_name="charges"
    )
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.PROTECT, related_name="charges"
    )
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="charges"
    )
    amount = models.BigIntegerField()
    amount_captured = models.BigIntegerField(default=0)
    amount_refunded = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices)
    captured = models.BooleanField(default=False)
    disputed = models.BooleanField(default=False)
    failure_code = models.CharField(max_length=64, blank=True, default="")
    failure_message = models.CharField(max_length=500, blank=True, default="")
    # Stripe's `outcome`, plus PayLab's routing decision and every processor
    # attempt of this confirmation under `outcome["paylab"]`.
    outcome = models.JSONField(default=dict, blank=True)
    payment_method_details = models.JSONField(default=dict, blank=True)
    processor = models.CharField(max_length=64, blank=True, default="")
    authorization_code = models.CharField(max_length=16, blank=True, default="")
    balance_transaction = models.ForeignKey(
        "payments.LedgerTransaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["merchant", "-id"], name="charge_merchant_id")]
        constraints = [
            models.CheckConstraint(
                name="charge_refunded_le_captured",
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=F("amount_captured")),
            ),
            models.CheckConstraint(
                name="charge_captured_le_amount",
                condition=Q(amount_captured__gte=0) & Q(amount_captured__lte=F("amount")),
            ),
        ]

    def __str__(self) -> str:
        return self.id


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    id = models.CharField(primary_key=True, max_length=40)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="refunds")
    payment_intent = models.ForeignKey(
        PaymentIntent, on_delete=models.PROTECT, related_name="refunds"
    )
    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=32, blank=True, default="")
    failure_reason = models.CharField(max_length=64, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    balance_transaction = models.ForeignKey(
        "payments.LedgerTransaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # A pending refund is settled (succeeded or failed) by a task at this time.
    settles_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "-id"], name="refund_merchant_id"),
            models.Index(
                fields=["settles_at"], name="refund_pending", condition=Q(status="pending")
            ),
        ]
        constraints = [
            models.CheckConstraint(name="refund_amount_positive", condition=Q(amount__gt=0))
        ]

    def __str__(self) -> str:
        return self.id


class Dispute(models.Model):
    class Status(models.TextChoices):
        WARNING_NEEDS_RESPONSE = "warning_needs_response"
        WARNING_CLOSED = "warning_closed"
        NEEDS_RESPONSE = "needs_response"
        UNDER_REVIEW = "under_review"
        WON = "won"
        LOST = "lost"

    id = models.CharField(primary_key=True, max_length=40)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="disputes")
    payment_intent = models.ForeignKey(
        PaymentIntent, on_delete=models.PROTECT, related_name="disputes"
    )
    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, related_name="disputes")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=32, choices=Status.choices)
    reason = models.CharField(max_length=40)
    fee = models.BigIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["merchant", "-id"], name="dispute_merchant_id")]

    def __str__(self) -> str:
        return self.id

    @property
    def is_open(self) -> bool:
        return self.status in {
            self.Status.WARNING_NEEDS_RESPONSE,
            self.Status.NEEDS_RESPONSE,
            self.Status.UNDER_REVIEW,
        }


class ThreeDSChallenge(models.Model):
    """A hosted 3-D Secure challenge. The token in its URL is the credential."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        EXPIRED = "expired"

    token = models.CharField(primary_key=True, max_length=64)
    payment_intent = models.ForeignKey(
        PaymentIntent, on_delete=models.CASCADE, related_name="challenges"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    return_url = models.URLField(max_length=2000, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["expires_at"], name="challenge_pending", condition=Q(status="pending")
            )
        ]

    def __str__(self) -> str:
        return f"3DS {self.payment_intent_id} {self.status}"
