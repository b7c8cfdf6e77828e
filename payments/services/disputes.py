"""Disputes: opened by the dispute test cards after capture, closed as won
or lost by an operator (service, admin action, dashboard).

Opening withdraws the disputed amount and a dispute fee from the merchant
balance (an inquiry withdraws nothing); winning reinstates the amount (the
fee is kept, as Stripe does). Each step is a DISPUTE transition of the
payment, so the event log carries the change of `amount_disputed`.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Merchant
from config.errors import InvalidRequestError
from payments import ids, processing
from payments.errors import missing
from payments.models import Charge, Dispute, PaymentIntent, PaymentMethod
from payments.models.ledger import LedgerTransaction
from payments.services.records import dispute_entries, dispute_reversal_entries, post_ledger
from payments.services.transition import lock_intent, transition
from payments.state_machine import Action


def open_dispute_if_card_says(
    intent: PaymentIntent, charge: Charge, pm: PaymentMethod, *, now: datetime
) -> Dispute | None:
    """Open the dispute a dispute test card asks for, right after capture."""
    behaviour = pm.behaviour or {}
    reason = behaviour.get("dispute_reason")
    if not reason:
        return None
    inquiry = str(behaviour.get("dispute_status", "")).startswith("warning")
    return dispute_open(intent=intent, charge=charge, reason=reason, inquiry=inquiry, now=now)


def dispute_open(
    *, intent: PaymentIntent, charge: Charge, reason: str, inquiry: bool = False, now: datetime
) -> Dispute:
    """Open a dispute on a captured charge (caller holds the payment lock).
    Appends `charge.dispute.created` (and `charge.dispute.funds_withdrawn`)."""
    amount = charge.amount_captured - charge.amount_refunded
    dispute = Dispute(
        id=ids.new_id("dp", now),
        merchant_id=intent.merchant_id,
        payment_intent=intent,
        charge=charge,
        amount=amount,
        currency=charge.currency,
        status=Dispute.Status.WARNING_NEEDS_RESPONSE if inquiry else Dispute.Status.NEEDS_RESPONSE,
        reason=reason,
        fee=0 if inquiry else processing.dispute_fee(currency=charge.currency),
        created=now,
    )
    dispute.save(force_insert=True)
    charge.disputed = True
    charge.save(update_fields=["disputed"])
    emits: list[tuple[str, object]] = [("charge.dispute.created", dispute)]
    changes = {}
    if not inquiry:
        post_ledger(
            merchant_id=intent.merchant_id,
            type=LedgerTransaction.Type.DISPUTE,
            currency=charge.currency,
            source=dispute.id,
            payment_intent_id=intent.id,
            entries=dispute_entries(amount, dispute.fee),
            description=f"Chargeback withdrawal for {charge.id}",
            now=now,
        )
        changes["amount_disputed"] = intent.amount_disputed + amount
        emits.append(("charge.dispute.funds_withdrawn", dispute))
    transition(intent, Action.DISPUTE, now=now, changes=changes, emits=emits)
    return dispute


@transaction.atomic
def dispute_close(
    *, merchant: Merchant | None, dispute_id: str, won: bool, now: datetime | None = None
) -> Dispute:
    """Close an open dispute as won or lost. Appends `charge.dispute.closed`
    (and `charge.dispute.funds_reinstated` when won)."""
    now = now or timezone.now()
    query = Dispute.objects.filter(pk=dispute_id)
    if merchant is not None:
        query = query.filter(merchant=merchant)
    found = query.values_list("payment_intent_id", flat=True).first()
    if found is None:
        raise missing("dispute", dispute_id)
    # Lock order: the payment first, as every other writer does.
    intent = lock_intent(merchant_id=None, intent_id=found)
    dispute = Dispute.objects.select_for_update().get(pk=dispute_id)
    if not dispute.is_open:
        raise InvalidRequestError(
            f"This dispute is already closed ({dispute.status}).", code="dispute_already_closed"
        )
    inquiry = dispute.status == Dispute.Status.WARNING_NEEDS_RESPONSE
    dispute.closed_at = now
    changes = {}
    emits: list[tuple[str, object]] = []
    if inquiry:
        dispute.status = Dispute.Status.WARNING_CLOSED
    elif won:
        dispute.status = Dispute.Status.WON
        post_ledger(
            merchant_id=dispute.merchant_id,
            type=LedgerTransaction.Type.DISPUTE_REVERSAL,
            currency=dispute.currency,
            source=dispute.id,
            payment_intent_id=intent.id,
            entries=dispute_reversal_entries(dispute.amount),
            description=f"Chargeback reversal for {dispute.charge_id}",
            now=now,
        )
        changes["amount_disputed"] = intent.amount_disputed - dispute.amount
    else:
        dispute.status = Dispute.Status.LOST
    dispute.save(update_fields=["status", "closed_at"])
    emits.append(("charge.dispute.closed", dispute))
    if won and not inquiry:
        emits.append(("charge.dispute.funds_reinstated", dispute))
    transition(intent, Action.DISPUTE, now=now, changes=changes, emits=emits)
    return dispute
