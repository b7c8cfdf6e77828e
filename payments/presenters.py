"""Stripe's object shapes: one presenter per object (STYLE 8).

The API, the event snapshots and the webhooks all use these, so an object
looks the same wherever it appears. `expand` names the foreign objects to
inline instead of their ids (`customer`, `payment_method`, `latest_charge`,
`charge`, `payment_intent`, `balance_transaction`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from payments.models import (
    Charge,
    Customer,
    Dispute,
    Event,
    LedgerTransaction,
    PaymentIntent,
    PaymentMethod,
    Refund,
    WebhookEndpoint,
)


def ts(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _expansions(expand: Iterable[str] | None) -> dict[str, list[str]]:
    """`["latest_charge.balance_transaction", "customer"]` → {"latest_charge": ["balance_transaction"], "customer": []}."""
    result: dict[str, list[str]] = {}
    for item in expand or ():
        head, _, rest = item.partition(".")
        result.setdefault(head, [])
        if rest:
            result[head].append(rest)
    return result


def customer(obj: Customer, expand: Iterable[str] | None = None) -> dict[str, Any]:
    if obj.deleted_at is not None:
        return {"id": obj.id, "object": "customer", "deleted": True}
    return {
        "id": obj.id,
        "object": "customer",
        "created": ts(obj.created),
        "description": obj.description or None,
        "email": obj.email or None,
        "livemode": False,
        "metadata": obj.metadata,
        "name": obj.name or None,
        "phone": obj.phone or None,
    }


def _card(pm: PaymentMethod) -> dict[str, Any]:
    return {
        "brand": pm.brand,
        "country": pm.country or None,
        "exp_month": pm.exp_month,
        "exp_year": pm.exp_year,
        "fingerprint": pm.fingerprint,
        "funding": pm.funding,
        "last4": pm.last4,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "three_d_secure_usage": {"supported": True},
    }


def payment_method(obj: PaymentMethod, expand: Iterable[str] | None = None) -> dict[str, Any]:
    billing = {"address": None, "email": None, "name": None, "phone": None}
    billing.update(obj.billing_details or {})
    result: dict[str, Any] = {
        "id": obj.id,
        "object": "payment_method",
        "billing_details": billing,
        "created": ts(obj.created),
        "customer": obj.customer_id,
        "livemode": False,
        "metadata": obj.metadata,
        "type": obj.type,
    }
    if obj.type == PaymentMethod.Type.CARD:
        result["card"] = _card(obj)
    else:
        result[obj.type] = dict(obj.details)
    if "customer" in _expansions(expand) and obj.customer is not None:
        result["customer"] = customer(obj.customer)
    return result


def balance_transaction(
    obj: LedgerTransaction, expand: Iterable[str] | None = None
) -> dict[str, Any]:
    return {
        "id": obj.id,
        "object": "balance_transaction",
        "amount": obj.amount,
        "available_on": ts(obj.created),
        "created": ts(obj.created),
        "currency": obj.currency,
        "description": obj.description or None,
        "fee": obj.fee,
        "fee_details": (
            [
                {
                    "amount": obj.fee,
                    "currency": obj.currency,
                    "description": "PayLab processing fees",
                    "type": "stripe_fee",
                }
            ]
            if obj.fee
            else []
        ),
        "net": obj.net,
        "reporting_category": obj.type,
        "source": obj.source,
        "status": "available",
        "type": obj.type if obj.type != LedgerTransaction.Type.DISPUTE_REVERSAL else "adjustment",
    }


def _maybe_txn(obj: Any, expand: dict[str, list[str]]) -> Any:
    if obj.balance_transaction_id and "balance_transaction" in expand:
        return balance_transaction(obj.balance_transaction)
    return obj.balance_transaction_id


def charge(obj: Charge, expand: Iterable[str] | None = None) -> dict[str, Any]:
    exp = _expansions(expand)
    outcome = dict(obj.outcome or {})
    paylab = outcome.pop("paylab", None)
    result: dict[str, Any] = {
        "id": obj.id,
        "object": "charge",
        "amount": obj.amount,
        "amount_captured": obj.amount_captured,
        "amount_refunded": obj.amount_refunded,
        "balance_transaction": _maybe_txn(obj, exp),
        "captured": obj.captured,
        "created": ts(obj.created),
        "currency": obj.currency,
        "customer": obj.customer_id,
        "disputed": obj.disputed,
        "failure_code": obj.failure_code or None,
        "failure_message": obj.failure_message or None,
        "livemode": False,
        "metadata": {},
        "outcome": outcome or None,
        "paid": obj.status == Charge.Status.SUCCEEDED,
        "payment_intent": obj.payment_intent_id,
        "payment_method": obj.payment_method_id,
        "payment_method_details": obj.payment_method_details,
        "refunded": obj.amount_captured > 0 and obj.amount_refunded >= obj.amount_captured,
        "status": obj.status,
    }
    if paylab is not None:
        result["paylab"] = paylab
    if "payment_intent" in exp:
        result["payment_intent"] = payment_intent(obj.payment_intent, exp["payment_intent"])
    if "payment_method" in exp:
        result["payment_method"] = payment_method(obj.payment_method)
    if "customer" in exp and obj.customer is not None:
        result["customer"] = customer(obj.customer)
    return result


def payment_intent(obj: PaymentIntent, expand: Iterable[str] | None = None) -> dict[str, Any]:
    exp = _expansions(expand)
    result: dict[str, Any] = {
        "id": obj.id,
        "object": "payment_intent",
        "amount": obj.amount,
        "amount_capturable": obj.amount_capturable,
        "amount_received": obj.amount_received,
        "canceled_at": ts(obj.canceled_at),
        "cancellation_reason": obj.cancellation_reason or None,
        "capture_method": obj.capture_method,
        "client_secret": obj.client_secret,
        "confirmation_method": "automatic",
        "created": ts(obj.created),
        "currency": obj.currency,
        "customer": obj.customer_id,
        "description": obj.description or None,
        "last_payment_error": obj.last_payment_error,
        "latest_charge": obj.latest_charge_id,
        "livemode": False,
        "metadata": obj.metadata,
        "next_action": obj.next_action,
        "payment_method": obj.payment_method_id,
        "payment_method_types": obj.payment_method_types,
        "receipt_email": obj.receipt_email or None,
        "statement_descriptor": obj.statement_descriptor or None,
        "status": obj.status,
    }
    if "customer" in exp and obj.customer is not None:
        result["customer"] = customer(obj.customer)
    if "payment_method" in exp and obj.payment_method is not None:
        result["payment_method"] = payment_method(obj.payment_method, exp["payment_method"])
    if "latest_charge" in exp and obj.latest_charge is not None:
        result["latest_charge"] = charge(obj.latest_charge, exp["latest_charge"])
    return result


def refund(obj: Refund, expand: Iterable[str] | None = None) -> dict[str, Any]:
    exp = _expansions(expand)
    result: dict[str, Any] = {
        "id": obj.id,
        "object": "refund",
        "amount": obj.amount,
        "balance_transaction": _maybe_txn(obj, exp),
        "charge": obj.charge_id,
        "created": ts(obj.created),
        "currency": obj.currency,
        "failure_reason": (obj.failure_reason or None) if obj.status == "failed" else None,
        "metadata": obj.metadata,
        "payment_intent": obj.payment_intent_id,
        "reason": obj.reason or None,
        "status": obj.status,
    }
    if "charge" in exp:
        result["charge"] = charge(obj.charge, exp["charge"])
    if "payment_intent" in exp:
        result["payment_intent"] = payment_intent(obj.payment_intent, exp["payment_intent"])
    return result


def dispute(obj: Dispute, expand: Iterable[str] | None = None) -> dict[str, Any]:
    exp = _expansions(expand)
    result: dict[str, Any] = {
        "id": obj.id,
        "object": "dispute",
        "amount": obj.amount,
        "charge": obj.charge_id,
        "created": ts(obj.created),
        "currency": obj.currency,
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": obj.payment_intent_id,
        "reason": obj.reason,
        "status": obj.status,
    }
    if "charge" in exp:
        result["charge"] = charge(obj.charge, exp["charge"])
    if "payment_intent" in exp:
        result["payment_intent"] = payment_intent(obj.payment_intent, exp["payment_intent"])
    return result


def event(obj: Event, expand: Iterable[str] | None = None) -> dict[str, Any]:
    return {
        "id": obj.id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": ts(obj.created),
        "data": {"object": obj.data},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": obj.request_id or None, "idempotency_key": obj.idempotency_key or None},
        "type": obj.type,
    }


def balance(available: dict[str, int], pending: dict[str, int]) -> dict[str, Any]:
    return {
        "object": "balance",
        "available": [
            {"amount": v, "currency": c, "source_types": {"card": v}}
            for c, v in sorted(available.items())
        ],
        "pending": [
            {"amount": v, "currency": c, "source_types": {"card": v}}
            for c, v in sorted(pending.items())
        ],
        "livemode": False,
    }


def webhook_endpoint(obj: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """Stripe's webhook endpoint; the secret only on creation and roll."""
    result: dict[str, Any] = {
        "id": obj.id,
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": ts(obj.created),
        "description": obj.description or None,
        "enabled_events": list(obj.enabled_events),
        "livemode": False,
        "metadata": obj.metadata,
        "status": obj.status,
        "url": obj.url,
        # PayLab's flag on an endpoint it disabled after failing too long.
        "disabled_reason": obj.disabled_reason or None,
    }
    if with_secret:
        result["secret"] = obj.secret
    return result
