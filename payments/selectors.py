"""Reads of the payments domain, always scoped to one merchant (DESIGN rule 8).

Another merchant's object is "no such object": `get_*` raise the 404
`resource_missing`, whatever exists under that id elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Q, QuerySet, Sum

from payments.errors import missing
from payments.models import (
    Charge,
    Customer,
    Dispute,
    Event,
    LedgerEntry,
    LedgerTransaction,
    PaymentIntent,
    PaymentMethod,
    Refund,
    WebhookEndpoint,
)
from payments.models.ledger import Account, Side

_RELATED = {
    PaymentIntent: ("customer", "payment_method", "latest_charge"),
    Charge: ("payment_method", "customer", "balance_transaction"),
    Refund: ("balance_transaction",),
    Dispute: (),
    PaymentMethod: ("customer",),
    Customer: (),
    Event: (),
    LedgerTransaction: (),
}
_KIND = {
    PaymentIntent: "payment_intent",
    Charge: "charge",
    Refund: "refund",
    Dispute: "dispute",
    PaymentMethod: "PaymentMethod",
    Customer: "customer",
    Event: "event",
    LedgerTransaction: "balance_transaction",
}


def scoped(model: Any, merchant_id: int) -> QuerySet[Any]:
    query = model.objects.filter(merchant_id=merchant_id)
    related = _RELATED.get(model)
    return query.select_related(*related) if related else query


def get_object(model: Any, *, merchant_id: int, object_id: str) -> Any:
    found = scoped(model, merchant_id).filter(pk=object_id).first()
    if found is None:
        raise missing(_KIND[model], object_id)
    return found


def payment_intents(merchant_id: int, *, customer: str | None = None) -> QuerySet[PaymentIntent]:
    query = scoped(PaymentIntent, merchant_id)
    return query.filter(customer_id=customer) if customer else query


def refunds(
    merchant_id: int, *, payment_intent: str | None = None, charge: str | None = None
) -> QuerySet[Refund]:
    query = scoped(Refund, merchant_id)
    if payment_intent:
        query = query.filter(payment_intent_id=payment_intent)
    if charge:
        query = query.filter(charge_id=charge)
    return query


def payment_methods(
    merchant_id: int, *, customer: str, type: str | None = None
) -> QuerySet[PaymentMethod]:
    query = scoped(PaymentMethod, merchant_id).filter(customer_id=customer)
    return query.filter(type=type) if type else query


def customers(merchant_id: int, *, email: str | None = None) -> QuerySet[Customer]:
    query = scoped(Customer, merchant_id).filter(deleted_at__isnull=True)
    return query.filter(email__iexact=email) if email else query


def events(merchant_id: int, *, types: list[str] | None = None) -> QuerySet[Event]:
    query = scoped(Event, merchant_id)
    if types:
        condition = Q()
        for event_type in types:
            condition |= (
                Q(type__startswith=event_type[:-1])
                if event_type.endswith("*")
                else Q(type=event_type)
            )
        query = query.filter(condition)
    return query


def balance_transactions(
    merchant_id: int, *, type: str | None = None, source: str | None = None
) -> QuerySet[LedgerTransaction]:
    query = scoped(LedgerTransaction, merchant_id)
    if type:
        query = query.filter(type=type)
    if source:
        query = query.filter(source=source)
    return query


def merchant_balance(merchant_id: int) -> dict[str, int]:
    """The merchant's balance per currency: the credit balance of its
    `merchant_balance` ledger account (DESIGN rule 4)."""
    totals: dict[str, int] = defaultdict(int)
    rows = (
        LedgerEntry.objects.filter(merchant_id=merchant_id, account=Account.MERCHANT_BALANCE)
        .values("currency", "side")
        .annotate(total=Sum("amount"))
    )
    for row in rows:
        sign = 1 if row["side"] == Side.CREDIT else -1
        totals[row["currency"]] += sign * int(row["total"] or 0)
    return dict(totals)


def webhook_endpoints(merchant_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(merchant_id=merchant_id, deleted_at__isnull=True)
