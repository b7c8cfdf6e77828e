"""Payment intents: create, update, confirm, capture, cancel, 3-D Secure,
authorisation expiry.

Each public function runs in one transaction, locks the payment row, and
changes it only through `transition` — which appends the events and their
outbox rows; money movements post balanced ledger transactions in the same
transaction. A decline is not an exception: it is a committed outcome (the
failed charge, the intent back in `requires_payment_method` with
`last_payment_error`), returned to the API, which renders it as a 402.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import Merchant
from config.errors import CardError, InvalidRequestError
from payments import context, ids, money, presenters, processing
from payments import directives as simulation
from payments.directives import Directives
from payments.models import (
    Charge,
    PaymentIntent,
    PaymentMethod,
    PendingAuthorization,
    ThreeDSChallenge,
)
from payments.models.intents import CaptureMethod
from payments.models.ledger import LedgerTransaction
from payments.services import batch
from payments.services.customers import get_customer
from payments.services.disputes import open_dispute_if_card_says
from payments.services.metadata import merge_metadata
from payments.services.payment_methods import build_payment_method, get_payment_method
from payments.services.processors import breakers_record
from payments.services.records import charge_entries, post_ledger
from payments.services.transition import (
    check,
    lock_intent,
    record_creation,
    record_without_transition,
    transition,
)
from payments.state_machine import Action, Status

MAX_AMOUNT = 99_999_999
AUTHORIZATION_LIFETIME = timedelta(days=7)
CHALLENGE_LIFETIME = timedelta(minutes=15)
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
UPDATABLE = (
    "amount",
    "currency",
    "description",
    "receipt_email",
    "statement_descriptor",
    "customer",
    "payment_method_types",
)


@dataclass(frozen=True)
class Outcome:
    """A service result: the payment, and the card error to answer with (402) if declined.

    `pending_ms` > 0: the confirmation waits on its simulated processor; the
    payment is `processing` until `payment_intent_confirm_complete` applies
    the recorded outcome (the API awaits the delay outside any transaction).
    """

    intent: PaymentIntent
    error: CardError | None = None
    pending_ms: int = 0
    # A simulated latency to add to an answer already committed (capture).
    delay_ms: int = 0


def _validate_amount(amount: int, currency: str) -> None:
    if amount < money.minimum_amount(currency):
        raise InvalidRequestError(
            f"Amount must be at least {money.format_amount(money.minimum_amount(currency), currency)}.",
            code="amount_too_small",
            param="amount",
        )
    if amount > MAX_AMOUNT:
        raise InvalidRequestError(
            f"Amount must be no more than {money.format_amount(MAX_AMOUNT, currency)}.",
            code="amount_too_large",
            param="amount",
        )


def _currency(value: str) -> str:
    try:
        return money.validate_currency(value)
    except ValueError:
        raise InvalidRequestError(
            f"Invalid currency: {value}.", code="parameter_invalid", param="currency"
        ) from None


def _payment_method_for(
    merchant: Merchant,
    *,
    payment_method: str | None,
    payment_method_data: dict[str, Any] | None,
    now: datetime,
) -> PaymentMethod | None:
    if payment_method and payment_method_data:
        raise InvalidRequestError(
            "You cannot provide both payment_method and payment_method_data.",
            param="payment_method_data",
        )
    if payment_method:
        return get_payment_method(merchant=merchant, reference=payment_method, now=now)
    if payment_method_data:
        kind = str(payment_method_data.get("type") or "")
        pm = build_payment_method(
            merchant=merchant,
            type=kind,
            data=payment_method_data.get(kind),
            billing_details=payment_method_data.get("billing_details"),
            now=now,
            prefix="payment_method_data",
        )
        batch.insert([pm])
        return pm
    return None


def _payment_method_types(requested: list[str] | None, pm: PaymentMethod | None) -> list[str]:
    """What the payment may be confirmed with. Omitted, it is the type of the
    method given with it, else `card` (Stripe's default without automatic
    payment methods)."""
    if requested:
        return list(dict.fromkeys(requested))
    return [pm.type if pm is not None else PaymentMethod.Type.CARD]


def _check_allowed(types: list[str], pm: PaymentMethod, *, param: str) -> None:
    """Stripe refuses a method whose type the payment does not allow."""
    if pm.type not in types:
        raise InvalidRequestError(
            f"The PaymentMethod provided ({pm.type}) is not allowed for this PaymentIntent. "
            f"Please attach a PaymentMethod of one of the following types: {', '.join(types)}. "
            "Alternatively, update the allowed payment_method_types for this PaymentIntent "
            f'to include "{pm.type}".',
            code="payment_intent_incompatible_payment_method",
            param=param,
        )


def _method_param(payment_method_data: dict[str, Any] | None) -> str:
    return "payment_method_data[type]" if payment_method_data else "payment_method"


@batch.atomic
def payment_intent_create(
    *,
    merchant: Merchant,
    amount: int,
    currency: str,
    capture_method: str = CaptureMethod.AUTOMATIC_ASYNC,
    customer: str | None = None,
    payment_method: str | None = None,
    payment_method_data: dict[str, Any] | None = None,
    payment_method_types: list[str] | None = None,
    description: str = "",
    metadata: dict[str, str] | None = None,
    receipt_email: str = "",
    statement_descriptor: str = "",
    return_url: str = "",
    confirm: bool = False,
    hosted_base_url: str = "",
    simulate: str | None = None,
    defer: bool = False,
    expand: list[str] | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Create a payment (and confirm it when asked). Appends `payment_intent.created`.
    With `defer`, a confirmation whose processor takes time is left
    `processing` (see `Outcome.pending_ms`)."""
    now = now or timezone.now()
    currency = _currency(currency)
    _validate_amount(amount, currency)
    owner = get_customer(merchant_id=merchant.pk, customer_id=customer) if customer else None
    pm = _payment_method_for(
        merchant, payment_method=payment_method, payment_method_data=payment_method_data, now=now
    )
    types = _payment_method_types(payment_method_types, pm)
    if pm is not None:
        _check_allowed(types, pm, param=_method_param(payment_method_data))
    intent_id = ids.new_id("pi", now)
    intent = PaymentIntent(
        id=intent_id,
        merchant=merchant,
        amount=amount,
        currency=currency,
        status=Status.REQUIRES_CONFIRMATION if pm else Status.REQUIRES_PAYMENT_METHOD,
        capture_method=capture_method,
        customer=owner,
        payment_method=pm,
        payment_method_types=types,
        description=description or "",
        metadata=merge_metadata({}, metadata),
        receipt_email=receipt_email or "",
        statement_descriptor=statement_descriptor or "",
        return_url=return_url or "",
        client_secret=f"{intent_id}_secret_{secrets.token_urlsafe(18)}",
        created=now,
        updated=now,
    )
    record_creation(intent, now=now, emits=[("payment_intent.created", intent)])
    if confirm:
        if pm is None:
            raise InvalidRequestError(
                "You cannot confirm this PaymentIntent because it's missing a payment method. "
                "Pass payment_method or payment_method_data.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        return _confirm(
            intent,
            pm,
            return_url=return_url,
            hosted_base_url=hosted_base_url,
            simulate=simulate,
            defer=defer,
            expand=expand,
            now=now,
        )
    return Outcome(intent)


@batch.atomic
def payment_intent_update(
    *,
    merchant: Merchant,
    intent_id: str,
    fields: dict[str, Any],
    metadata: dict[str, str] | None = None,
    payment_method: str | None = None,
    now: datetime | None = None,
) -> PaymentIntent:
    """Update before confirmation. Metadata may change in any status (as in
    Stripe); anything else only while `requires_payment_method` or
    `requires_confirmation`. Appends `payment_intent.updated`."""
    now = now or timezone.now()
    intent = lock_intent(merchant_id=merchant.pk, intent_id=intent_id)
    changes: dict[str, Any] = {}
    currency = _currency(fields["currency"]) if "currency" in fields else intent.currency
    if "amount" in fields or "currency" in fields:
        _validate_amount(int(fields.get("amount", intent.amount)), currency)
    for name in UPDATABLE:
        if name not in fields:
            continue
        value = fields[name]
        if name == "customer":
            changes["customer"] = (
                get_customer(merchant_id=merchant.pk, customer_id=value) if value else None
            )
        elif name == "currency":
            changes["currency"] = currency
        else:
            changes[name] = value if value is not None else ""
    action = Action.UPDATE
    if payment_method:
        changes["payment_method"] = get_payment_method(
            merchant=merchant, reference=payment_method, now=now
        )
        action = Action.ATTACH_METHOD
    if "payment_method_types" in changes:
        changes["payment_method_types"] = _payment_method_types(
            changes["payment_method_types"], None
        )
    if "payment_method" in changes or "payment_method_types" in changes:
        pm = changes.get("payment_method") or intent.payment_method
        if pm is not None:
            _check_allowed(
                changes.get("payment_method_types", intent.payment_method_types),
                pm,
                param="payment_method" if payment_method else "payment_method_types",
            )
    changes["metadata"] = merge_metadata(intent.metadata, metadata)
    if not (changes.keys() - {"metadata"}) and intent.status not in (
        Status.REQUIRES_PAYMENT_METHOD,
        Status.REQUIRES_CONFIRMATION,
    ):
        # Metadata alone: allowed in every status, recorded without a status change.
        intent.metadata = changes["metadata"]
        return record_without_transition(
            intent, now=now, emits=[("payment_intent.updated", intent)]
        )
    return transition(
        intent, action, now=now, changes=changes, emits=[("payment_intent.updated", intent)]
    )


@batch.atomic
def payment_intent_confirm(
    *,
    merchant: Merchant,
    intent_id: str,
    payment_method: str | None = None,
    payment_method_data: dict[str, Any] | None = None,
    return_url: str | None = None,
    hosted_base_url: str = "",
    simulate: str | None = None,
    defer: bool = False,
    expand: list[str] | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Confirm: route to the processors, then authorise, capture, decline or
    ask for 3DS; a UPI payment goes `processing` and settles later. With
    `defer`, a processor that takes time leaves the payment `processing`
    with its recorded outcome (`PendingAuthorization`) for
    `payment_intent_confirm_complete`."""
    now = now or timezone.now()
    intent = lock_intent(merchant_id=merchant.pk, intent_id=intent_id, related=("payment_method",))
    # Only requires_payment_method / requires_confirmation may be confirmed:
    # exactly the statuses from which the table allows REQUIRE_ACTION.
    check(intent, Action.REQUIRE_ACTION)
    pm = _payment_method_for(
        merchant, payment_method=payment_method, payment_method_data=payment_method_data, now=now
    )
    pm = pm or intent.payment_method
    if pm is None:
        raise InvalidRequestError(
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "Pass payment_method or payment_method_data.",
            code="payment_intent_unexpected_state",
            param="payment_method",
        )
    _check_allowed(intent.payment_method_types, pm, param=_method_param(payment_method_data))
    if return_url:
        intent.return_url = return_url
    return _confirm(
        intent,
        pm,
        return_url=intent.return_url,
        hosted_base_url=hosted_base_url,
        simulate=simulate,
        defer=defer,
        expand=expand,
        now=now,
    )


def _confirm(
    intent: PaymentIntent,
    pm: PaymentMethod,
    *,
    return_url: str,
    hosted_base_url: str,
    now: datetime,
    simulate: str | None = None,
    defer: bool = False,
    expand: list[str] | None = None,
) -> Outcome:
    # The header wins over `metadata[paylab_simulate]`; `http=` answers
    # that status having done nothing (raising rolls the transaction back).
    directives = simulation.for_request(simulate, intent.metadata, "confirm")
    if directives is not None and directives.http:
        raise simulation.http_error(directives)
    outcome = processing.authorize(
        _authorization_request(intent, pm), directives=directives, now=now
    )
    if outcome.result == "requires_action":
        return Outcome(
            _require_action(
                intent, pm, return_url=return_url, hosted_base_url=hosted_base_url, now=now
            )
        )
    if outcome.result == "processing":
        return Outcome(_begin_async_settlement(intent, pm, outcome, now=now))
    if defer and outcome.latency_ms > 0:
        # Phase 1 of a confirmation that waits: the plan is recorded and the
        # payment is `processing` (so no other confirmation, update or cancel
        # can interleave) before the transaction commits; the wait happens
        # outside any transaction (payments.api.deferred).
        PendingAuthorization.objects.create(
            payment_intent=intent,
            merchant_id=intent.merchant_id,
            kind=PendingAuthorization.Kind.CARD,
            outcome=outcome.as_dict(),
            due_at=now + timedelta(milliseconds=outcome.latency_ms),
            idempotency_key=context.current().idempotency_key,
            expand=list(expand or []),
            created=now,
        )
        transition(
            intent,
            Action.BEGIN_PROCESSING,
            now=now,
            changes={"payment_method": pm, "next_action": None, "last_payment_error": None},
            emits=[("payment_intent.processing", intent)],
        )
        return Outcome(intent, pending_ms=outcome.latency_ms)
    outcome = _record_breakers(intent, outcome, now=now)
    return _apply_authorization(intent, pm, outcome, now=now)


def _record_breakers(
    intent: PaymentIntent, outcome: processing.AuthorizationOutcome, *, now: datetime
) -> processing.AuthorizationOutcome:
    """Apply the attempts to the breakers; a breaker this payment opened or
    closed is then written on its charge (`outcome.paylab.breaker_changes`)
    as well as in the processor's events."""
    changes = breakers_record(results=outcome.breaker_results, now=now, payment_intent=intent.id)
    return replace(outcome, breaker_changes=changes) if changes else outcome


def _begin_async_settlement(
    intent: PaymentIntent,
    pm: PaymentMethod,
    outcome: processing.AuthorizationOutcome,
    *,
    now: datetime,
) -> PaymentIntent:
    """UPI: the processor accepted the collect request; the customer's bank
    answers later. A pending charge, `processing`, and a settlement due."""
    from payments import tasks

    outcome = _record_breakers(intent, outcome, now=now)
    result, seconds = processing.upi_settlement(str((pm.details or {}).get("vpa", "")))
    charge = Charge(
        id=ids.new_id("ch", now),
        merchant_id=intent.merchant_id,
        payment_intent=intent,
        payment_method=pm,
        customer_id=intent.customer_id,
        amount=intent.amount,
        currency=intent.currency,
        status=Charge.Status.PENDING,
        outcome=outcome.stripe_outcome(),
        payment_method_details=_card_details(pm),
        processor=outcome.processor,
        created=now,
    )
    batch.insert([charge])
    PendingAuthorization.objects.create(
        payment_intent=intent,
        merchant_id=intent.merchant_id,
        kind=PendingAuthorization.Kind.ASYNC,
        outcome={**outcome.as_dict(), "settles": result},
        due_at=now + timedelta(seconds=seconds),
        created=now,
    )
    transition(
        intent,
        Action.BEGIN_PROCESSING,
        now=now,
        changes={
            "latest_charge": charge,
            "payment_method": pm,
            "next_action": None,
            "last_payment_error": None,
            "processor": outcome.processor,
        },
        emits=[("charge.pending", charge), ("payment_intent.processing", intent)],
    )
    transaction.on_commit(
        lambda: tasks.settle_pending_authorization.apply_async((intent.id,), countdown=seconds)
    )
    return intent


@batch.atomic
def payment_intent_confirm_complete(
    *, intent_id: str, now: datetime | None = None
) -> Outcome | None:
    """Phase 2 of a confirmation that waited on its processor, or the
    settlement of a UPI payment: apply the recorded outcome to the
    `processing` payment — breakers, charge, ledger, events — in one short
    transaction. None when there is nothing (left) to apply: already applied
    by the sweep or the request, or not yet due for an asynchronous method."""
    now = now or timezone.now()
    pending = PendingAuthorization.objects.select_for_update().filter(pk=intent_id).first()
    if pending is None:
        return None
    intent = lock_intent(merchant_id=None, intent_id=intent_id)
    if pending.kind == PendingAuthorization.Kind.ASYNC and pending.due_at > now:
        return None
    pm = intent.payment_method
    assert pm is not None
    data = dict(pending.outcome)
    settles = data.pop("settles", None)
    outcome = processing.AuthorizationOutcome.from_dict(data)
    pending.delete()
    if pending.kind == PendingAuthorization.Kind.ASYNC:
        charge = Charge.objects.select_for_update().get(pk=intent.latest_charge_id)
        if settles == "failed":
            outcome = processing.AuthorizationOutcome(
                **{
                    **data,
                    "result": "declined",
                    "decline_code": "generic_decline",
                    "error_code": "payment_method_provider_decline",
                    "message": "The customer's bank declined the UPI payment.",
                    "network_status": "declined_by_network",
                    "outcome_type": "issuer_declined",
                }
            )
        else:
            outcome = processing.AuthorizationOutcome(**{**data, "result": "approved"})
        return _apply_authorization(intent, pm, outcome, now=now, charge=charge)
    outcome = _record_breakers(intent, outcome, now=now)
    return _apply_authorization(intent, pm, outcome, now=now)


def pending_authorizations_due(
    *, now: datetime | None = None, grace_seconds: float = 0.0, limit: int = 500
) -> list[str]:
    """Payments whose recorded outcome is due: UPI settlements, and card
    confirmations whose request died during its wait (older than `grace`)."""
    now = now or timezone.now()
    query = PendingAuthorization.objects.filter(
        Q(kind=PendingAuthorization.Kind.ASYNC, due_at__lte=now)
        | Q(kind=PendingAuthorization.Kind.CARD, due_at__lte=now - timedelta(seconds=grace_seconds))
    )
    return list(query.order_by("due_at").values_list("pk", flat=True)[:limit])


def _authorization_request(
    intent: PaymentIntent, pm: PaymentMethod, *, three_ds_completed: bool = False
) -> processing.AuthorizationRequest:
    return processing.AuthorizationRequest(
        merchant_id=intent.merchant_id,
        payment_intent_id=intent.id,
        amount=intent.amount,
        currency=intent.currency,
        method_type=pm.type,
        brand=pm.brand,
        bin=pm.bin,
        behaviour=pm.behaviour,
        three_ds_completed=three_ds_completed,
    )


def _require_action(
    intent: PaymentIntent,
    pm: PaymentMethod,
    *,
    return_url: str,
    hosted_base_url: str,
    now: datetime,
) -> PaymentIntent:
    token = secrets.token_urlsafe(24)
    ThreeDSChallenge.objects.create(
        token=token,
        payment_intent=intent,
        return_url=return_url,
        created=now,
        expires_at=now + CHALLENGE_LIFETIME,
    )
    base = (hosted_base_url or settings.PAYLAB_PUBLIC_URL).rstrip("/")
    url = base + reverse("payments:three_ds_challenge", kwargs={"token": token})
    next_action = {
        "type": "redirect_to_url",
        "redirect_to_url": {"url": url, "return_url": return_url or None},
    }
    return transition(
        intent,
        Action.REQUIRE_ACTION,
        now=now,
        changes={"payment_method": pm, "next_action": next_action, "last_payment_error": None},
        emits=[("payment_intent.requires_action", intent)],
    )


def _card_details(pm: PaymentMethod) -> dict[str, Any]:
    if pm.type != PaymentMethod.Type.CARD:
        return {"type": pm.type, pm.type: dict(pm.details)}
    return {
        "type": "card",
        "card": {
            "brand": pm.brand,
            "country": pm.country or None,
            "exp_month": pm.exp_month,
            "exp_year": pm.exp_year,
            "fingerprint": pm.fingerprint,
            "funding": pm.funding,
            "last4": pm.last4,
            "network": pm.brand,
        },
    }


def _apply_authorization(
    intent: PaymentIntent,
    pm: PaymentMethod,
    outcome: processing.AuthorizationOutcome,
    *,
    now: datetime,
    charge: Charge | None = None,
) -> Outcome:
    approved = outcome.result == "approved"
    manual = intent.capture_method == CaptureMethod.MANUAL
    existing = charge
    charge = Charge(
        id=existing.id if existing else ids.new_id("ch", now),
        merchant_id=intent.merchant_id,
        payment_intent=intent,
        payment_method=pm,
        customer_id=intent.customer_id,
        amount=intent.amount,
        currency=intent.currency,
        status=Charge.Status.SUCCEEDED if approved else Charge.Status.FAILED,
        failure_code="" if approved else (outcome.error_code or "card_declined"),
        failure_message="" if approved else (outcome.message or "Your card was declined."),
        outcome=outcome.stripe_outcome(),
        payment_method_details=_card_details(pm),
        processor=outcome.processor,
        authorization_code=outcome.authorization_code,
        created=existing.created if existing else now,
    )
    if existing is not None:
        # A UPI charge settling: the row exists, pending until now.
        batch.update(charge)
    if not approved:
        if existing is None:
            batch.insert([charge])
        error = {
            "type": "card_error",
            "code": charge.failure_code,
            "decline_code": outcome.decline_code,
            "message": charge.failure_message,
            "charge": charge.id,
            "payment_method": _payment_method_snapshot(pm),
        }
        transition(
            intent,
            Action.FAIL,
            now=now,
            changes={
                "latest_charge": charge,
                "payment_method": None,
                "last_payment_error": error,
                "next_action": None,
                "processor": outcome.processor,
            },
            emits=[("charge.failed", charge), ("payment_intent.payment_failed", intent)],
        )
        return Outcome(
            intent,
            CardError(
                charge.failure_message,
                code=charge.failure_code,
                decline_code=outcome.decline_code,
                extra={"charge": charge.id},
            ),
        )
    changes: dict[str, Any] = {
        "latest_charge": charge,
        "payment_method": pm,
        "last_payment_error": None,
        "next_action": None,
        "processor": outcome.processor,
    }
    if manual:
        if existing is None:
            batch.insert([charge])
        changes.update(
            amount_capturable=intent.amount,
            authorization_expires_at=now + processing.authorization_lifetime(outcome),
        )
        transition(
            intent,
            Action.AUTHORIZE,
            now=now,
            changes=changes,
            emits=[
                ("charge.succeeded", charge),
                ("payment_intent.amount_capturable_updated", intent),
            ],
        )
        return Outcome(intent)
    _capture_charge(intent, charge, intent.amount, now=now, new=existing is None)
    changes.update(amount_received=intent.amount, amount_capturable=0)
    transition(
        intent,
        Action.SUCCEED,
        now=now,
        changes=changes,
        emits=[("charge.succeeded", charge), ("payment_intent.succeeded", intent)],
    )
    open_dispute_if_card_says(intent, charge, pm, now=now)
    return Outcome(intent)


def _payment_method_snapshot(pm: PaymentMethod) -> dict[str, Any]:
    return presenters.payment_method(pm)


def _capture_charge(
    intent: PaymentIntent, charge: Charge, amount: int, *, now: datetime, new: bool = False
) -> None:
    """Capture `amount` of the charge and post it (less the fee) to the ledger."""
    fee = processing.capture_fee(
        processor=charge.processor, amount=amount, currency=charge.currency
    )
    txn = post_ledger(
        merchant_id=intent.merchant_id,
        type=LedgerTransaction.Type.CHARGE,
        currency=charge.currency,
        source=charge.id,
        payment_intent_id=intent.id,
        entries=charge_entries(amount, fee),
        description=intent.description or f"Payment {intent.id}",
        now=now,
    )
    charge.amount_captured = amount
    charge.captured = True
    charge.balance_transaction = txn
    if new:
        batch.insert([charge])
    else:
        batch.update(charge, ["amount_captured", "captured", "balance_transaction"])


@batch.atomic
def payment_intent_capture(
    *,
    merchant: Merchant,
    intent_id: str,
    amount_to_capture: int | None = None,
    now: datetime | None = None,
) -> PaymentIntent:
    """Capture all or part of an authorisation; the rest is released.
    Appends `charge.captured` and `payment_intent.succeeded`."""
    return payment_intent_capture_outcome(
        merchant=merchant, intent_id=intent_id, amount_to_capture=amount_to_capture, now=now
    ).intent


@batch.atomic
def payment_intent_capture_outcome(
    *,
    merchant: Merchant,
    intent_id: str,
    amount_to_capture: int | None = None,
    simulate: str | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Capture, or — when a `PayLab-Simulate` directive at capture says so —
    fail it: the payment stays `requires_capture`, the failed attempt is
    appended to the charge's `outcome.paylab.capture_attempts` and recorded
    as `charge.updated`, and the error (402) is returned."""
    now = now or timezone.now()
    intent = lock_intent(merchant_id=merchant.pk, intent_id=intent_id)
    directives = simulation.for_request(simulate, intent.metadata, "capture")
    if directives is not None and directives.http:
        raise simulation.http_error(directives)
    check(intent, Action.CAPTURE)
    amount = intent.amount_capturable if amount_to_capture is None else amount_to_capture
    if amount <= 0 or amount > intent.amount_capturable:
        raise InvalidRequestError(
            f"The amount to capture must be between 1 and the capturable amount "
            f"({money.format_amount(intent.amount_capturable, intent.currency)}).",
            code="amount_too_large" if amount > 0 else "parameter_invalid",
            param="amount_to_capture",
        )
    # The payment method comes along for the dispute check after capture.
    charge = (
        Charge.objects.select_for_update(of=("self",))
        .select_related("payment_method")
        .get(pk=intent.latest_charge_id)
    )
    delay = (directives.latency_ms or 0) if directives is not None else 0
    if directives is not None and (directives.decline or directives.processor_error):
        return replace(_fail_capture(intent, charge, directives, now=now), delay_ms=delay)
    _capture_charge(intent, charge, amount, now=now)
    transition(
        intent,
        Action.CAPTURE,
        now=now,
        changes={
            "amount_received": amount,
            "amount_capturable": 0,
            "authorization_expires_at": None,
        },
        emits=[("charge.captured", charge), ("payment_intent.succeeded", intent)],
    )
    pm = charge.payment_method
    open_dispute_if_card_says(intent, charge, pm, now=now)
    return Outcome(intent, delay_ms=delay)


def _fail_capture(
    intent: PaymentIntent, charge: Charge, directives: Directives, *, now: datetime
) -> Outcome:
    code = directives.decline or directives.processor_error or "processing_error"
    outcome = dict(charge.outcome or {})
    paylab = dict(outcome.get("paylab") or {})
    paylab["capture_attempts"] = [
        *(paylab.get("capture_attempts") or []),
        {
            "processor": charge.processor,
            "result": "declined" if directives.decline else "error",
            "code": code,
            "simulate": directives.source,
            "at": int(now.timestamp()),
        },
    ]
    outcome["paylab"] = paylab
    charge.outcome = outcome
    charge.save(update_fields=["outcome"])
    record_without_transition(intent, now=now, emits=[("charge.updated", charge)])
    message = (
        "Your card was declined."
        if directives.decline
        else "An error occurred while processing your card. Try again in a little bit."
    )
    return Outcome(
        intent,
        CardError(
            message,
            code="card_declined" if directives.decline else "processing_error",
            decline_code=directives.decline,
            extra={"charge": charge.id},
        ),
    )


@batch.atomic
def payment_intent_cancel(
    *,
    merchant: Merchant | None,
    intent_id: str,
    cancellation_reason: str | None = None,
    now: datetime | None = None,
) -> PaymentIntent:
    """Cancel (void). An authorisation is released. Appends `payment_intent.canceled`."""
    now = now or timezone.now()
    if cancellation_reason and cancellation_reason not in CANCELLATION_REASONS:
        raise InvalidRequestError(
            f"Invalid cancellation_reason: must be one of {', '.join(CANCELLATION_REASONS)}.",
            param="cancellation_reason",
        )
    intent = lock_intent(merchant_id=merchant.pk if merchant else None, intent_id=intent_id)
    return _cancel(intent, Action.CANCEL, reason=cancellation_reason or "", now=now)


def _cancel(intent: PaymentIntent, action: Action, *, reason: str, now: datetime) -> PaymentIntent:
    check(intent, action)
    ThreeDSChallenge.objects.filter(
        payment_intent=intent, status=ThreeDSChallenge.Status.PENDING
    ).update(status=ThreeDSChallenge.Status.EXPIRED, completed_at=now)
    return transition(
        intent,
        action,
        now=now,
        changes={
            "amount_capturable": 0,
            "canceled_at": now,
            "cancellation_reason": reason,
            "next_action": None,
            "authorization_expires_at": None,
        },
        emits=[("payment_intent.canceled", intent)],
    )


def payment_intents_expire_authorizations(*, now: datetime | None = None, limit: int = 500) -> int:
    """Cancel authorisations older than their lifetime (reason `automatic`).
    Each in its own short transaction; safe to run from several workers."""
    now = now or timezone.now()
    due = list(
        PaymentIntent.objects.filter(
            status=Status.REQUIRES_CAPTURE, authorization_expires_at__lte=now
        ).values_list("pk", flat=True)[:limit]
    )
    expired = 0
    for intent_id in due:
        with transaction.atomic():
            intent = lock_intent(merchant_id=None, intent_id=intent_id)
            # Re-check under the lock: a capture may have won the race.
            if (
                intent.status == Status.REQUIRES_CAPTURE
                and intent.authorization_expires_at
                and intent.authorization_expires_at <= now
            ):
                _cancel(intent, Action.EXPIRE, reason="automatic", now=now)
                expired += 1
    return expired


@dataclass(frozen=True)
class ChallengeResult:
    intent: PaymentIntent
    return_url: str


@batch.atomic
def three_ds_challenge_complete(
    *, token: str, succeeded: bool, now: datetime | None = None
) -> ChallengeResult:
    """The customer completed or failed the hosted 3-D Secure challenge.

    Success resumes the confirmation (which may still be declined by the
    issuer); failure or an expired challenge leaves the payment in
    `requires_payment_method` with `payment_intent_authentication_failure`.
    """
    now = now or timezone.now()
    challenge = ThreeDSChallenge.objects.select_for_update().filter(pk=token).first()
    if challenge is None:
        raise InvalidRequestError(
            "This authentication challenge does not exist.", status=404, code="resource_missing"
        )
    intent = lock_intent(merchant_id=None, intent_id=challenge.payment_intent_id)
    if (
        challenge.status != ThreeDSChallenge.Status.PENDING
        or intent.status != Status.REQUIRES_ACTION
    ):
        raise InvalidRequestError(
            "This authentication challenge is no longer open.",
            code="payment_intent_unexpected_state",
        )
    expired = challenge.expires_at <= now
    challenge.status = (
        ThreeDSChallenge.Status.EXPIRED
        if expired
        else ThreeDSChallenge.Status.SUCCEEDED
        if succeeded
        else ThreeDSChallenge.Status.FAILED
    )
    challenge.completed_at = now
    challenge.save(update_fields=["status", "completed_at"])
    pm = intent.payment_method
    assert pm is not None
    if succeeded and not expired:
        outcome = processing.authorize(
            _authorization_request(intent, pm, three_ds_completed=True), now=now
        )
        outcome = _record_breakers(intent, outcome, now=now)
        _apply_authorization(intent, pm, outcome, now=now)
    else:
        _fail_authentication(intent, pm, now=now)
    return ChallengeResult(intent=intent, return_url=challenge.return_url)


def _fail_authentication(intent: PaymentIntent, pm: PaymentMethod, *, now: datetime) -> None:
    error = {
        "type": "invalid_request_error",
        "code": "payment_intent_authentication_failure",
        "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data "
        "or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
        "payment_method": _payment_method_snapshot(pm),
    }
    transition(
        intent,
        Action.FAIL,
        now=now,
        changes={"payment_method": None, "last_payment_error": error, "next_action": None},
        emits=[("payment_intent.payment_failed", intent)],
    )


def three_ds_challenges_expire(*, now: datetime | None = None, limit: int = 500) -> int:
    """Fail payments whose challenge expired unanswered (the sweep)."""
    now = now or timezone.now()
    due = list(
        ThreeDSChallenge.objects.filter(
            status=ThreeDSChallenge.Status.PENDING, expires_at__lte=now
        ).values_list("pk", flat=True)[:limit]
    )
    for token in due:
        try:
            three_ds_challenge_complete(token=token, succeeded=False, now=now)
        except InvalidRequestError:
            continue  # answered or canceled meanwhile
    return len(due)
