"""Customers and payment methods.

A card payment method keeps brand, last4, expiry, funding, country and a
keyed fingerprint — never the number or the CVC (DESIGN rule 5). The test
card's behaviour (decline, 3DS, dispute…) is copied into `behaviour`, so
later steps (capture, refund) know it without the number.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone

from accounts.models import Merchant


class Customer(models.Model):
    id = models.CharField(primary_key=True, max_length=40)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="customers")
    email = models.EmailField(blank=True, default="")
    name = models.CharField(max_length=256, blank=True, default="")
    phone = models.CharField(max_length=40, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["merchant", "email"], name="customer_merchant_email"),
            # The explorer's email search is case-insensitive (`iexact`,
            # UPPER(email) = UPPER(…)), across merchants for staff.
            models.Index(Upper("email"), name="customer_email_upper"),
        ]

    def __str__(self) -> str:
        return self.email or self.id


class PaymentMethod(models.Model):
    class Type(models.TextChoices):
        CARD = "card"
        UPI = "upi"
        WALLET = "wallet"

    id = models.CharField(primary_key=True, max_length=40)
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="payment_methods")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="payment_methods"
    )
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.CARD)
    brand = models.CharField(max_length=20, blank=True, default="")
    last4 = models.CharField(max_length=4, blank=True, default="")
    bin = models.CharField(max_length=6, blank=True, default="")
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    funding = models.CharField(max_length=10, blank=True, default="")
    country = models.CharField(max_length=2, blank=True, default="")
    fingerprint = models.CharField(max_length=32, blank=True, default="")
    # The test card's behaviour (decline code, 3DS, dispute, refund failure,
    # risk), copied from `payments.cards` when the number was seen.
    behaviour = models.JSONField(default=dict, blank=True)
    # Non-card details (UPI VPA, wallet type); never a card number.
    details = models.JSONField(default=dict, blank=True)
    billing_details = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        # The explorer's last4 search joins the intents on this.
        indexes = [models.Index(fields=["last4"], name="pm_last4")]

    def __str__(self) -> str:
        return f"{self.brand} •••• {self.last4}" if self.type == self.Type.CARD else self.id
