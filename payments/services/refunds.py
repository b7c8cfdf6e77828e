"""Refunds: several partial refunds up to the captured amount.

Refunds of one payment are serialised on the payment's row lock, so
concurrent refunds can never add up to more than was captured (the check
constraint `pi_refunded_le_received` backs this up). The refund-fails test
card's refunds are accepted as `pending` — the money leaves the merchant
balance at once — and fail when they settle, which puts it back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Merchant
from config.errors import InvalidRequestError
from payments import directives as simulation
from payments import ids, money, processing
from payments.errors import missing
from payments.models import Charge, Refund
from payments.models.ledger import LedgerTransaction
from payments.services import batch
from payments.services.metadata import merge_metadata
from payments.services.records import post_ledger, refund_entries, refund_failure_entries
from payments.services.transition import check, lock_intent, transition
from payments.state_machine import Action

REASONS = ("duplicate", "fraudulent", "requested_by_customer")
PENDING_SETTLE_AFTER = timedelta(seconds=5)


def _intent_id_for(merchant: Merchant, *, payment_intent: str | None, charge: str | None) -> str:
    if payment_intent:
        return payment_intent
    if charge:
        found = (
            Charge.objects.filter(pk=charge, merchant=merchant)
            .values_list("payment_intent_id", flat=True)
            .first()
        )
        if found is None:
            raise missing("charge", charge, param="charge")
        return found
    raise InvalidRequestError(
        "One of the following params should be provided for this request: payment_intent or charge.",
        code="parameter_missing",
        param="payment_intent",
    )


@batch.atomic
def refund_create(
    *,
    merchant: Merchant,
    payment_intent: str | None = None,
    charge: str | None = None,
    amount: int | None = None,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
    simulate: str | None = None,
    now: datetime | None = None,
) -> Refund:
    """Refund all or part of what is left. Appends `refund.created` and
    `charge.refunded`; posts the refund to the ledger.

    A `PayLab-Simulate` directive at refund (`decline=…` or
    `processor_error=…`) makes it a refund that is accepted, then fails when
    it settles — the refund-fails card's path, with the directive's code as
    the failure reason; `http=…` answers that status and does nothing."""
    now = now or timezone.now()
    if reason and reason not in REASONS:
        raise InvalidRequestError(
            f"Invalid reason: must be one of {', '.join(REASONS)}.", param="reason"
        )
    intent_id = _intent_id_for(merchant, payment_intent=payment_intent, charge=charge)
    intent = lock_intent(merchant_id=merchant.pk, intent_id=intent_id)
    check(intent, Action.REFUND)
    # The payment method comes along: its test behaviour decides the settlement.
    captured = (
        Charge.objects.select_for_update(of=("self",))
        .select_related("payment_method")
        .get(pk=intent.latest_charge_id)
    )
    if charge and captured.id != charge:
        raise InvalidRequestError(
            f"Charge {charge} was not captured and cannot be refunded.", param="charge"
        )
    if captured.disputed and intent.amount_disputed > 0:
        raise InvalidRequestError(
            f"Charge {captured.id} has been charged back; cannot issue a refund.",
            code="charge_disputed",
        )
    remaining = intent.amount_received - intent.amount_refunded
    if remaining <= 0:
        raise InvalidRequestError(
            f"Charge {captured.id} has already been refunded.", code="charge_already_refunded"
        )
    amount = remaining if amount is None else amount
    if amount <= 0:
        raise InvalidRequestError(
            "Invalid positive integer", code="parameter_invalid", param="amount"
        )
    if amount > remaining:
        raise InvalidRequestError(
            f"Refund amount ({money.format_amount(amount, intent.currency)}) is greater than unrefunded amount "
            f"on charge ({money.format_amount(remaining, intent.currency)})",
            code="amount_too_large",
            param="amount",
        )
    directives = simulation.for_request(simulate, intent.metadata, "refund")
    if directives is not None and directives.http:
        raise simulation.http_error(directives)
    forced_failure = (directives.decline or directives.processor_error or "") if directives else ""
    settles_later = bool(forced_failure) or processing.refund_settles_later(
        captured.payment_method.behaviour
    )
    refund = Refund(
        id=ids.new_id("re", now),
        merchant=merchant,
        payment_intent=intent,
        charge=captured,
        amount=amount,
        currency=intent.currency,
        status=Refund.Status.PENDING if settles_later else Refund.Status.SUCCEEDED,
        reason=reason or "",
        # Kept while pending; shown once the refund has failed.
        failure_reason=forced_failure,
        metadata=merge_metadata({}, metadata),
        settles_at=now + PENDING_SETTLE_AFTER if settles_later else None,
        created=now,
    )
    refund.balance_transaction = post_ledger(
        merchant_id=merchant.pk,
        type=LedgerTransaction.Type.REFUND,
        currency=intent.currency,
        source=refund.id,
        payment_intent_id=intent.id,
        entries=refund_entries(amount),
        description=f"Refund for {captured.id}",
        now=now,
    )
    batch.insert([refund])
    captured.amount_refunded += amount
    batch.update(captured, ["amount_refunded"])
    transition(
        intent,
        Action.REFUND,
        now=now,
        changes={"amount_refunded": intent.amount_refunded + amount},
        emits=[("refund.created", refund), ("charge.refunded", captured)],
    )
    if settles_later:
        from payments.tasks import settle_refund

        transaction.on_commit(lambda: _schedule(settle_refund, refund.id))
    return refund


def _schedule(task: Any, refund_id: str) -> None:
    try:
        task.apply_async(args=[refund_id], countdown=PENDING_SETTLE_AFTER.total_seconds())
    except Exception:  # the periodic sweep settles it if the broker is down
        return


def refund_settle(*, refund_id: str, now: datetime | None = None) -> Refund | None:
    """Settle a pending refund: the refund-fails card fails it, putting the
    money back. Idempotent: a settled refund is left alone."""
    now = now or timezone.now()
    with transaction.atomic(), batch.batched():
        intent_id = (
            Refund.objects.filter(pk=refund_id).values_list("payment_intent_id", flat=True).first()
        )
        if intent_id is None:
            return None
        intent = lock_intent(merchant_id=None, intent_id=intent_id)
        refund = (
            Refund.objects.select_for_update()
            .select_related("charge__payment_method")
            .get(pk=refund_id)
        )
        if refund.status != Refund.Status.PENDING:
            return refund
        charge = Charge.objects.select_for_update().get(pk=refund.charge_id)
        fails = bool(refund.failure_reason) or processing.refund_settles_later(
            charge.payment_method.behaviour
        )
        if not fails:
            refund.status = Refund.Status.SUCCEEDED
            refund.save(update_fields=["status"])
            transition(intent, Action.REFUND, now=now, emits=[("charge.refund.updated", refund)])
            return refund
        post_ledger(
            merchant_id=refund.merchant_id,
            type=LedgerTransaction.Type.REFUND_FAILURE,
            currency=refund.currency,
            source=refund.id,
            payment_intent_id=intent.id,
            entries=refund_failure_entries(refund.amount),
            description=f"Refund failure for {charge.id}",
            now=now,
        )
        refund.status = Refund.Status.FAILED
        refund.failure_reason = refund.failure_reason or "expired_or_canceled_card"
        refund.save(update_fields=["status", "failure_reason"])
        charge.amount_refunded -= refund.amount
        charge.save(update_fields=["amount_refunded"])
        transition(
            intent,
            Action.REFUND,
            now=now,
            changes={"amount_refunded": intent.amount_refunded - refund.amount},
            emits=[("refund.failed", refund), ("charge.refund.updated", refund)],
        )
        return refund


def refunds_settle_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """The sweep behind the scheduled settle task."""
    now = now or timezone.now()
    due = list(
        Refund.objects.filter(status=Refund.Status.PENDING, settles_at__lte=now).values_list(
            "pk", flat=True
        )[:limit]
    )
    for refund_id in due:
        refund_settle(refund_id=refund_id, now=now)
    return len(due)
