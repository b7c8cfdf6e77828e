"""Payments made through the services, so each has its events and ledger."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import Merchant
from payments.models import PaymentIntent
from payments.models.intents import CaptureMethod
from payments.services import intents
from tests.conftest import MerchantWithKey


def pay(
    merchant: Merchant,
    *,
    amount: int = 1_500,
    currency: str = "usd",
    card: str = "pm_card_visa",
    manual: bool = False,
    **extra: Any,
) -> PaymentIntent:
    return intents.payment_intent_create(
        merchant=merchant,
        amount=amount,
        currency=currency,
        capture_method=CaptureMethod.MANUAL if manual else CaptureMethod.AUTOMATIC,
        payment_method=card,
        confirm=True,
        **extra,
    ).intent


@pytest.fixture
def paid_a(merchant_a: MerchantWithKey) -> PaymentIntent:
    return pay(merchant_a.merchant, amount=2_000, metadata={"order": "A-42"})


@pytest.fixture
def authorized_a(merchant_a: MerchantWithKey) -> PaymentIntent:
    return pay(merchant_a.merchant, amount=5_000, manual=True)


def htmx(target: str = "") -> dict[str, str]:
    headers = {"HTTP_HX_REQUEST": "true"}
    if target:
        headers["HTTP_HX_TARGET"] = target
    return headers
