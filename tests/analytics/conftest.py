"""Payments for analytics tests, made through the payment services only,
then published by the real outbox relay and projected by the real projector."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Merchant
from analytics import services as analytics
from payments.models import PaymentIntent
from payments.models.intents import CaptureMethod
from payments.services import customers, disputes, intents, outbox, refunds
from payments.tasks import settle_refund
from tests.conftest import MerchantWithKey


def pay(
    merchant: Merchant,
    card: str = "pm_card_visa",
    *,
    amount: int = 10_000,
    currency: str = "usd",
    customer: str | None = None,
    manual: bool = False,
    at: datetime | None = None,
) -> PaymentIntent:
    outcome = intents.payment_intent_create(
        merchant=merchant,
        amount=amount,
        currency=currency,
        capture_method=CaptureMethod.MANUAL if manual else CaptureMethod.AUTOMATIC,
        payment_method=card,
        customer=customer,
        confirm=True,
        now=at,
    )
    return PaymentIntent.objects.get(pk=outcome.intent.pk)


def publish_and_project() -> int:
    """Publish everything committed (the relay), then project it."""
    while outbox.outbox_publish(relay="tests", limit=500).count:
        pass
    return analytics.rollups_catch_up()


@dataclass
class Mix:
    a: Merchant
    b: Merchant
    now: datetime


def make_mix(a: Merchant, b: Merchant) -> Mix:
    """A payment of every kind for merchant A, a few for B, an hour apart."""
    now = timezone.now().replace(microsecond=0)
    earlier = now - timedelta(hours=1)
    customer = customers.customer_create(merchant=a, fields={"email": "ada@example.com"})
    paid = pay(a, amount=10_000, customer=customer.id, at=earlier)
    pay(a, amount=2_500, customer=customer.id)
    refunds.refund_create(merchant=a, payment_intent=paid.id, amount=1_000)
    manual = pay(a, "pm_card_mastercard", amount=4_000, manual=True)
    intents.payment_intent_capture(merchant=a, intent_id=manual.id, amount_to_capture=3_000)
    pay(a, "pm_card_visa_chargeDeclinedInsufficientFunds", amount=700)
    pay(a, "pm_card_visa_chargeDeclined", amount=800, at=earlier)
    pay(a, "pm_card_amex", amount=5_000, currency="eur")
    disputed = pay(a, "pm_card_createDispute", amount=6_000)
    dispute = disputed.disputes.get()
    disputes.dispute_close(merchant=a, dispute_id=dispute.id, won=True)
    failing = pay(a, "pm_card_refundFail", amount=1_200)
    refund = refunds.refund_create(merchant=a, payment_intent=failing.id)
    settle_refund(refund.id)
    canceled = intents.payment_intent_create(merchant=a, amount=999, currency="usd")
    intents.payment_intent_cancel(merchant=a, intent_id=canceled.intent.id)
    pay(b, amount=77_700, currency="gbp")
    pay(b, "pm_card_chargeDeclinedExpiredCard", amount=300, currency="gbp")
    return Mix(a=a, b=b, now=now)


@pytest.fixture
def mix(merchant_a: MerchantWithKey, merchant_b: MerchantWithKey) -> Mix:
    return make_mix(merchant_a.merchant, merchant_b.merchant)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """The filter options are cached a minute; each test starts without."""
    from django.core.cache import cache

    cache.clear()
