"""Payments made through the services, as every test here needs them.

Fixtures only call services (never insert rows), so each payment has its
events and ledger postings, and `verify` can be asked about any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from django.utils import timezone

from accounts.models import Merchant
from payments.models import PaymentIntent
from payments.models.intents import CaptureMethod
from payments.services import intents
from tests.conftest import MerchantWithKey

Pay = Callable[..., PaymentIntent]


@pytest.fixture
def merchant(merchant_a: MerchantWithKey) -> Merchant:
    return merchant_a.merchant


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def pay(merchant: Merchant, now: datetime) -> Pay:
    """`pay(card, amount=, currency=, manual=)`: create and confirm a payment
    with a `pm_card_*` test card, at `now`; the payment as stored."""

    def make(
        card: str = "pm_card_visa",
        *,
        amount: int = 10_000,
        currency: str = "usd",
        manual: bool = False,
        at: datetime | None = None,
    ) -> PaymentIntent:
        outcome = intents.payment_intent_create(
            merchant=merchant,
            amount=amount,
            currency=currency,
            capture_method=CaptureMethod.MANUAL if manual else CaptureMethod.AUTOMATIC,
            payment_method=card,
            confirm=True,
            now=at or now,
        )
        return PaymentIntent.objects.get(pk=outcome.intent.pk)

    return make
