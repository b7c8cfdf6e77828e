"""Payments data. Writes go through `payments.services`; reads through `payments.selectors`."""

from payments.models.customers import Customer, PaymentMethod
from payments.models.events import Event, OutboxMessage
from payments.models.idempotency import IdempotencyKey
from payments.models.intents import Charge, Dispute, PaymentIntent, Refund, ThreeDSChallenge
from payments.models.ledger import LedgerEntry, LedgerTransaction
from payments.models.processors import (
    PendingAuthorization,
    Processor,
    ProcessorBreaker,
    ProcessorEvent,
    ProcessorOutage,
    RoutingRule,
)
from payments.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Charge",
    "Customer",
    "Dispute",
    "Event",
    "IdempotencyKey",
    "LedgerEntry",
    "LedgerTransaction",
    "OutboxMessage",
    "PaymentIntent",
    "PaymentMethod",
    "PendingAuthorization",
    "Processor",
    "ProcessorBreaker",
    "ProcessorEvent",
    "ProcessorOutage",
    "Refund",
    "RoutingRule",
    "ThreeDSChallenge",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
