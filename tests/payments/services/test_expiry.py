"""Authorisations expire after 7 days; unanswered 3-D Secure challenges expire too.

The sweeps take `now`, so the clock is an argument, not a mock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from accounts.models import Merchant
from config.errors import InvalidRequestError, PayLabError
from payments.models import Event, LedgerTransaction, PaymentIntent, ThreeDSChallenge
from payments.services import intents, verify
from payments.services.intents import (
    CHALLENGE_LIFETIME,
    payment_intents_expire_authorizations,
    three_ds_challenges_expire,
)
from payments.state_machine import Status
from tests.payments.services.conftest import Pay

SECOND = timedelta(seconds=1)


def _fresh(intent: PaymentIntent) -> PaymentIntent:
    return PaymentIntent.objects.get(pk=intent.pk)


def test_an_authorisation_expires_after_seven_days_as_an_automatic_cancellation(
    pay: Pay, now: datetime
) -> None:
    # Given a payment authorised for manual capture
    intent = pay(manual=True, amount=4_000)

    # When the sweep runs a second after its lifetime
    expired = payment_intents_expire_authorizations(now=now + timedelta(days=7) + SECOND)

    # Then it is canceled, reason automatic, the hold released, no money moved
    intent = _fresh(intent)
    assert expired == 1
    assert intent.status == Status.CANCELED
    assert intent.cancellation_reason == "automatic"
    assert intent.amount_capturable == 0
    assert intent.canceled_at == now + timedelta(days=7) + SECOND
    last = Event.objects.filter(payment_intent=intent).order_by("-sequence").first()
    assert last is not None
    assert (last.type, last.from_status, last.to_status) == (
        "payment_intent.canceled",
        Status.REQUIRES_CAPTURE,
        Status.CANCELED,
    )
    assert not LedgerTransaction.objects.filter(payment_intent=intent).exists()
    assert verify.run().ok


def test_an_authorisation_does_not_expire_before_seven_days(pay: Pay, now: datetime) -> None:
    intent = pay(manual=True)

    expired = payment_intents_expire_authorizations(now=now + timedelta(days=7) - SECOND)

    assert expired == 0
    assert _fresh(intent).status == Status.REQUIRES_CAPTURE
    assert _fresh(intent).version == intent.version


def test_the_sweep_leaves_captured_and_automatic_payments_alone(
    merchant: Merchant, pay: Pay, now: datetime
) -> None:
    captured = pay(manual=True)
    intents.payment_intent_capture(merchant=merchant, intent_id=captured.id)
    automatic = pay()

    expired = payment_intents_expire_authorizations(now=now + timedelta(days=30))

    assert expired == 0
    assert _fresh(captured).status == Status.SUCCEEDED
    assert _fresh(automatic).status == Status.SUCCEEDED


def test_an_expired_authorisation_can_no_longer_be_captured(
    merchant: Merchant, pay: Pay, now: datetime
) -> None:
    intent = pay(manual=True)
    payment_intents_expire_authorizations(now=now + timedelta(days=8))

    with pytest.raises(PayLabError) as raised:
        intents.payment_intent_capture(merchant=merchant, intent_id=intent.id)

    assert raised.value.code == "payment_intent_unexpected_state"
    assert "status is canceled" in raised.value.message


def test_a_second_sweep_changes_nothing(pay: Pay, now: datetime) -> None:
    intent = pay(manual=True)
    later = now + timedelta(days=8)
    payment_intents_expire_authorizations(now=later)
    version = _fresh(intent).version

    assert payment_intents_expire_authorizations(now=later + SECOND) == 0
    assert _fresh(intent).version == version


def test_an_unanswered_3ds_challenge_expires_into_an_authentication_failure(
    pay: Pay, now: datetime
) -> None:
    # Given a payment waiting on its 3-D Secure challenge
    intent = pay("pm_card_threeDSecure2Required")
    challenge = ThreeDSChallenge.objects.get(payment_intent=intent)
    assert challenge.expires_at == now + CHALLENGE_LIFETIME

    # When the sweep runs before, then after, the challenge's lifetime
    assert three_ds_challenges_expire(now=now + CHALLENGE_LIFETIME - SECOND) == 0
    assert _fresh(intent).status == Status.REQUIRES_ACTION
    assert three_ds_challenges_expire(now=now + CHALLENGE_LIFETIME + SECOND) == 1

    # Then the payment needs a new payment method, and the challenge is closed
    intent = _fresh(intent)
    assert intent.status == Status.REQUIRES_PAYMENT_METHOD
    assert intent.last_payment_error is not None
    assert intent.last_payment_error["code"] == "payment_intent_authentication_failure"
    assert intent.next_action is None
    assert ThreeDSChallenge.objects.get(pk=challenge.pk).status == "expired"
    with pytest.raises(InvalidRequestError):
        intents.three_ds_challenge_complete(token=challenge.token, succeeded=True)
    assert verify.run().ok


def test_completing_a_challenge_after_it_expired_fails_the_authentication(
    pay: Pay, now: datetime
) -> None:
    intent = pay("pm_card_threeDSecure2Required")
    challenge = ThreeDSChallenge.objects.get(payment_intent=intent)

    intents.three_ds_challenge_complete(
        token=challenge.token, succeeded=True, now=now + CHALLENGE_LIFETIME + SECOND
    )

    assert _fresh(intent).status == Status.REQUIRES_PAYMENT_METHOD
    assert ThreeDSChallenge.objects.get(pk=challenge.pk).status == "expired"
