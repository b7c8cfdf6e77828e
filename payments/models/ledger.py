"""The double-entry ledger (DESIGN rule 4).

Every money movement is a LedgerTransaction with entries whose debits equal
their credits, posted in the same database transaction as the state change
that caused it. Accounts, per merchant and currency:

- `processor_clearing` (asset): what the acquirer owes PayLab's merchants;
- `merchant_balance` (liability): what is owed to the merchant — the
  merchant's balance is the credit balance of this account;
- `fee_revenue` (income): PayLab's processing and dispute fees.

A transaction's `amount`, `fee` and `net` repeat, for Stripe's balance
transaction object, what its entries say of the merchant balance;
`manage.py verify` checks they agree.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Merchant


class Account(models.TextChoices):
    PROCESSOR_CLEARING = "processor_clearing"
    MERCHANT_BALANCE = "merchant_balance"
    FEE_REVENUE = "fee_revenue"


class Side(models.TextChoices):
    DEBIT = "debit"
    CREDIT = "credit"


class LedgerTransaction(models.Model):
    class Type(models.TextChoices):
        CHARGE = "charge"
        REFUND = "refund"
        REFUND_FAILURE = "refund_failure"
        DISPUTE = "dispute"
        DISPUTE_REVERSAL = "dispute_reversal"

    id = models.CharField(primary_key=True, max_length=40)
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="ledger_transactions"
    )
    type = models.CharField(max_length=24, choices=Type.choices)
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField()
    fee = models.BigIntegerField(default=0)
    net = models.BigIntegerField()
    source = models.CharField(max_length=40)
    payment_intent = models.ForeignKey(
        "payments.PaymentIntent",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_transactions",
    )
    description = models.CharField(max_length=200, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["merchant", "-id"], name="txn_merchant_id")]

    def __str__(self) -> str:
        return self.id


class LedgerEntry(models.Model):
    id = models.BigAutoField(primary_key=True)
    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="+")
    account = models.CharField(max_length=24, choices=Account.choices)
    side = models.CharField(max_length=6, choices=Side.choices)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["merchant", "account", "currency"], name="entry_balance")]
        constraints = [
            models.CheckConstraint(name="entry_amount_positive", condition=Q(amount__gt=0))
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.account} {self.amount} {self.currency}"
