"""The card columns the write path keeps on a payment (`transition.set_card`):
set whenever a payment method is, kept when a failed confirmation clears
the payment method, blank for a non-card method — and internal, never in
the Stripe object."""

from __future__ import annotations

from datetime import datetime

import pytest

from accounts.models import Merchant
from payments import presenters
from payments.models import PaymentIntent, ThreeDSChallenge
from payments.services import intents, verify
from payments.state_machine import Status
from tests.payments.services.conftest import Pay

pytestmark = pytest.mark.django_db


def _card(intent: PaymentIntent) -> tuple[str, str]:
    stored = PaymentIntent.objects.get(pk=intent.pk)
    return stored.card_brand, stored.card_last4


def test_a_payment_created_with_a_card_carries_it(merchant: Merchant, now: datetime) -> None:
    created = intents.payment_intent_create(
        merchant=merchant, amount=1_000, currency="usd", payment_method="pm_card_amex", now=now
    ).intent

    assert _card(created) == ("amex", "0005")


@pytest.mark.parametrize(
    ("card", "last4"),
    [("pm_card_visa_chargeDeclined", "0002"), ("pm_card_chargeDeclinedExpiredCard", "0069")],
)
def test_a_declined_payment_keeps_the_card_it_tried(pay: Pay, card: str, last4: str) -> None:
    declined = pay(card)

    assert declined.status == Status.REQUIRES_PAYMENT_METHOD
    assert declined.payment_method_id is None  # cleared, as Stripe does
    assert _card(declined) == ("visa", last4)


def test_a_failed_3ds_challenge_keeps_the_card_it_tried(pay: Pay) -> None:
    intent = pay("pm_card_threeDSecureRequired")
    challenge = ThreeDSChallenge.objects.get(payment_intent=intent)

    intents.three_ds_challenge_complete(token=challenge.token, succeeded=False)

    failed = PaymentIntent.objects.get(pk=intent.pk)
    assert failed.payment_method_id is None
    assert _card(failed) == ("visa", "3063")


@pytest.mark.parametrize(
    ("card_b", "status", "shown"),
    [
        ("pm_card_mastercard", Status.SUCCEEDED, ("mastercard", "4444")),
        # declined too: the card it was last declined on
        ("pm_card_chargeDeclinedExpiredCard", Status.REQUIRES_PAYMENT_METHOD, ("visa", "0069")),
    ],
)
def test_a_card_declined_then_another_confirmed_shows_the_second(
    merchant: Merchant, pay: Pay, now: datetime, card_b: str, status: str, shown: tuple[str, str]
) -> None:
    # Given a payment confirmed with card A and declined
    declined = pay("pm_card_visa_chargeDeclined")
    assert _card(declined) == ("visa", "0002")

    # When it is confirmed again with card B
    intents.payment_intent_confirm(
        merchant=merchant, intent_id=declined.id, payment_method=card_b, now=now
    )

    # Then it carries card B, and verify (which recomputes the columns from
    # the payment method or last_payment_error) agrees
    assert PaymentIntent.objects.get(pk=declined.pk).status == status
    assert _card(declined) == shown
    assert verify.run().ok


def test_attaching_another_card_by_update_replaces_the_card(
    merchant: Merchant, pay: Pay, now: datetime
) -> None:
    declined = pay("pm_card_visa_chargeDeclined")

    intents.payment_intent_update(
        merchant=merchant,
        intent_id=declined.id,
        fields={},
        payment_method="pm_card_discover",
        now=now,
    )

    assert _card(declined) == ("discover", "1117")


def test_a_non_card_method_leaves_the_card_columns_blank(merchant: Merchant, now: datetime) -> None:
    wallet = intents.payment_intent_create(
        merchant=merchant,
        amount=1_500,
        currency="usd",
        payment_method_data={"type": "wallet", "wallet": {}},
        confirm=True,
        now=now,
    ).intent

    assert PaymentIntent.objects.get(pk=wallet.pk).payment_method is not None
    assert _card(wallet) == ("", "")


def test_the_card_columns_are_not_in_the_stripe_object(pay: Pay) -> None:
    declined = pay("pm_card_visa_chargeDeclined")

    shown = presenters.payment_intent(PaymentIntent.objects.get(pk=declined.pk))

    assert not {"card_brand", "card_last4"} & set(shown)
    # The object still says what Stripe's does: no payment method after a
    # decline, the card only inside last_payment_error.
    assert shown["payment_method"] is None
    assert shown["last_payment_error"]["payment_method"]["card"]["last4"] == "0002"
