"""The payment page says which method paid: a card, a UPI VPA, a wallet —
and for a declined payment, the card that was tried."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import User
from payments.services import intents
from tests.conftest import MerchantWithKey, logged_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("currency", "method", "shown"),
    [
        ("inr", {"type": "upi", "upi": {"vpa": "slow@paylab"}}, "UPI <code>slow@paylab</code>"),
        ("usd", {"type": "wallet", "wallet": {"type": "apple_pay"}}, "Wallet"),
    ],
)
def test_a_non_card_payment_shows_its_method(
    merchant_a: MerchantWithKey, operator_user: User, currency: str, method: dict, shown: str
) -> None:
    intent = intents.payment_intent_create(
        merchant=merchant_a.merchant,
        amount=10_000,
        currency=currency,
        payment_method_data=method,
        confirm=True,
    ).intent

    page = logged_in(operator_user).get(
        reverse("payments:payment_detail", kwargs={"payment_id": intent.id})
    )

    assert shown in page.content.decode()


def test_a_declined_payment_shows_the_card_it_tried(
    merchant_a: MerchantWithKey, operator_user: User
) -> None:
    outcome = intents.payment_intent_create(
        merchant=merchant_a.merchant,
        amount=1_000,
        currency="usd",
        payment_method="pm_card_chargeDeclined",
        confirm=True,
    )
    assert outcome.intent.payment_method is None  # detached, as in Stripe

    page = logged_in(operator_user).get(
        reverse("payments:payment_detail", kwargs={"payment_id": outcome.intent.id})
    )

    body = page.content.decode()
    assert "visa •••• 0002" in body and "last tried" in body
