"""The one write path of a payment's status and amounts (STYLE 3).

Callers lock the payment row (`lock_intent`), then call `transition` once
per state change. It asks the state machine for the new status (raising the
400 `payment_intent_unexpected_state` for an illegal move, before anything
is written), applies the field changes, bumps the version, saves the
projection and appends the events — the first one carrying the status
change and the delta of the projected amounts, which is what
`payments.services.rebuild` folds to recompute the payment. Whatever sets
the payment method also sets the intent's card columns (`set_card`), which
the explorer searches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from payments import presenters
from payments.errors import missing, unexpected_state
from payments.models import PaymentIntent, PaymentMethod
from payments.services import batch
from payments.services.records import NewEvent, append_events
from payments.state_machine import Action, IllegalTransition, next_status

# The projected amounts the event log carries as deltas.
PROJECTED_AMOUNTS = (
    "amount",
    "amount_capturable",
    "amount_received",
    "amount_refunded",
    "amount_disputed",
)

# An event to emit: its type and the object whose snapshot it carries (a
# model instance presented *after* the change, or a ready dict).
Emit = tuple[str, Any]


def lock_intent(
    *, merchant_id: int | None, intent_id: str, related: tuple[str, ...] = ()
) -> PaymentIntent:
    """The payment row, locked until the end of the transaction.

    Concurrent captures, refunds and confirmations of one payment queue here
    (PostgreSQL row lock; SQLite serialises writers at BEGIN IMMEDIATE).
    Another merchant's payment is "no such payment" — a 404, never a 403.
    `related` rows the caller will read come in the same query, unlocked
    (`FOR UPDATE OF` the payment only).
    """
    intent: PaymentIntent | None
    if related:
        query = PaymentIntent.objects.select_for_update(of=("self",)).filter(pk=intent_id)
        query = query.select_related(*related)
        if merchant_id is not None:
            query = query.filter(merchant_id=merchant_id)
        intent = query.first()
    elif merchant_id is not None:
        intent = batch.select_one(
            PaymentIntent, "id = %s AND merchant_id = %s", [intent_id, merchant_id], lock=True
        )
    else:
        intent = batch.select_one(PaymentIntent, "id = %s", [intent_id], lock=True)
    if intent is None:
        raise missing("payment_intent", intent_id)
    return intent


def check(intent: PaymentIntent, action: Action) -> None:
    """Refuse an illegal action before any other work is done."""
    try:
        next_status(intent.status, action)
    except IllegalTransition as error:
        raise unexpected_state(error) from None


def _snapshot(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    presenter: Callable[[Any], dict[str, Any]] = getattr(presenters, _presenter_name(obj))
    return presenter(obj)


def _presenter_name(obj: Any) -> str:
    return {
        "PaymentIntent": "payment_intent",
        "Charge": "charge",
        "Refund": "refund",
        "Dispute": "dispute",
        "PaymentMethod": "payment_method",
        "Customer": "customer",
    }[type(obj).__name__]


def transition(
    intent: PaymentIntent,
    action: Action,
    *,
    now: datetime,
    emits: Sequence[Emit],
    changes: dict[str, Any] | None = None,
) -> PaymentIntent:
    """Move a locked payment by `action`; save it; append `emits` in order."""
    try:
        new_status = next_status(intent.status, action)
    except IllegalTransition as error:
        raise unexpected_state(error) from None
    before = {name: getattr(intent, name) for name in PROJECTED_AMOUNTS}
    old_status = intent.status
    for name, value in (changes or {}).items():
        setattr(intent, name, value)
    if changes and "payment_method" in changes:
        set_card(intent)
    intent.status = new_status
    intent.version += 1
    intent.updated = now
    delta = {
        name: getattr(intent, name) - before[name]
        for name in PROJECTED_AMOUNTS
        if getattr(intent, name) != before[name]
    }
    _append(intent, emits, now=now, from_status=old_status, delta=delta)
    batch.update(intent)
    return intent


def record_creation(intent: PaymentIntent, *, now: datetime, emits: Sequence[Emit]) -> None:
    """Insert a new payment with its first events: sequence 1 carries its
    initial status and amount, so the fold starts from nothing.

    The events are numbered before the row is inserted, so the row goes in
    with its final `event_sequence` (no second UPDATE); the foreign keys
    from the events are checked at commit (Django's are deferrable)."""
    set_card(intent)
    delta = {name: getattr(intent, name) for name in PROJECTED_AMOUNTS if getattr(intent, name)}
    _append(intent, emits, now=now, from_status="", delta=delta)
    batch.insert([intent])


def set_card(intent: PaymentIntent) -> None:
    """Copy the card the intent last tried onto `card_brand` / `card_last4`
    (blank for a non-card method): its payment method's, or, when a failed
    confirmation cleared `payment_method` (as Stripe does), the method
    recorded in `last_payment_error`, so the explorer still finds a
    declined payment by the card it was declined on. With neither (a
    cancel) they are kept. Called by `transition` and `record_creation`,
    the only writers of `payment_method`, so the columns cannot lag it;
    `verify` recomputes them the same way (`expected_card`)."""
    pm = intent.payment_method
    if pm is not None:
        is_card = pm.type == PaymentMethod.Type.CARD
        intent.card_brand = pm.brand if is_card else ""
        intent.card_last4 = pm.last4 if is_card else ""
        return
    tried = (intent.last_payment_error or {}).get("payment_method") or {}
    if not tried.get("id"):
        return
    card = (tried.get("card") or {}) if tried.get("type") == PaymentMethod.Type.CARD else {}
    intent.card_brand = card.get("brand") or ""
    intent.card_last4 = card.get("last4") or ""


def record_without_transition(
    intent: PaymentIntent, *, now: datetime, emits: Sequence[Emit]
) -> PaymentIntent:
    """A change outside the lifecycle (metadata on a settled payment): the
    status and the amounts stay; the events still record it."""
    intent.version += 1
    intent.updated = now
    _append(intent, emits, now=now, from_status=intent.status, delta={})
    batch.update(intent)
    return intent


def _append(
    intent: PaymentIntent,
    emits: Sequence[Emit],
    *,
    now: datetime,
    from_status: str,
    delta: dict[str, int],
) -> None:
    events = [
        NewEvent(
            type=event_type,
            data=_snapshot(obj),
            from_status=from_status if index == 0 else "",
            to_status=intent.status if index == 0 else "",
            delta=delta if index == 0 else None,
        )
        for index, (event_type, obj) in enumerate(emits)
    ]
    append_events(merchant_id=intent.merchant_id, events=events, now=now, intent=intent)
