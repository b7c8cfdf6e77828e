"""Disputes opened by the dispute test cards, closed as won or lost."""

from __future__ import annotations

import pytest

from accounts.models import Merchant
from config.errors import InvalidRequestError, PayLabError
from payments import processing, selectors
from payments.models import Dispute, Event, LedgerTransaction, PaymentIntent
from payments.services import disputes, intents, refunds, verify
from payments.state_machine import Status
from tests.conftest import MerchantWithKey
from tests.payments.services.conftest import Pay

DISPUTE_FEE = processing.dispute_fee(currency="usd")


def _fresh(intent: PaymentIntent) -> PaymentIntent:
    return PaymentIntent.objects.get(pk=intent.pk)


def _balance(merchant: Merchant) -> int:
    return selectors.merchant_balance(merchant.pk).get("usd", 0)


def _captured_net(amount: int, processor: str) -> int:
    """Net of the fee of the processor the payment was routed to."""
    return amount - processing.capture_fee(processor=processor, amount=amount, currency="usd")


@pytest.mark.parametrize(
    ("card", "reason"),
    [
        ("pm_card_createDispute", "fraudulent"),
        ("pm_card_createDisputeProductNotReceived", "product_not_received"),
    ],
)
def test_a_dispute_card_opens_a_dispute_and_withdraws_amount_and_fee(
    merchant: Merchant, pay: Pay, card: str, reason: str
) -> None:
    intent = pay(card, amount=10_000)

    dispute = Dispute.objects.get(payment_intent=intent)
    assert (dispute.status, dispute.reason) == (Dispute.Status.NEEDS_RESPONSE, reason)
    assert (dispute.amount, dispute.fee) == (10_000, DISPUTE_FEE)
    assert intent.status == Status.SUCCEEDED
    assert intent.amount_disputed == 10_000
    assert _balance(merchant) == _captured_net(10_000, intent.processor) - 10_000 - DISPUTE_FEE
    [txn] = LedgerTransaction.objects.filter(payment_intent=intent, type="dispute")
    assert (txn.net, txn.fee) == (-(10_000 + DISPUTE_FEE), DISPUTE_FEE)
    types = list(
        Event.objects.filter(payment_intent=intent)
        .order_by("sequence")
        .values_list("type", flat=True)
    )
    assert types[-2:] == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    assert verify.run().ok


def test_a_manually_captured_dispute_card_disputes_what_was_captured(
    merchant: Merchant, pay: Pay
) -> None:
    intent = pay("pm_card_createDispute", amount=10_000, manual=True)
    assert not Dispute.objects.filter(payment_intent=intent).exists()

    intents.payment_intent_capture(merchant=merchant, intent_id=intent.id, amount_to_capture=6_000)

    assert Dispute.objects.get(payment_intent=intent).amount == 6_000
    assert _fresh(intent).amount_disputed == 6_000


def test_a_won_dispute_reinstates_the_funds_but_not_the_fee(merchant: Merchant, pay: Pay) -> None:
    intent = pay("pm_card_createDispute", amount=10_000)
    dispute = Dispute.objects.get(payment_intent=intent)
    withdrawn = _balance(merchant)

    closed = disputes.dispute_close(merchant=merchant, dispute_id=dispute.id, won=True)

    assert closed.status == Dispute.Status.WON
    assert closed.closed_at is not None
    assert _balance(merchant) == withdrawn + 10_000
    assert _fresh(intent).amount_disputed == 0
    assert Event.objects.filter(
        payment_intent=intent, type="charge.dispute.funds_reinstated"
    ).exists()
    assert verify.run().ok


def test_a_lost_dispute_keeps_the_funds_withdrawn(merchant: Merchant, pay: Pay) -> None:
    intent = pay("pm_card_createDispute", amount=10_000)
    dispute = Dispute.objects.get(payment_intent=intent)
    withdrawn = _balance(merchant)

    closed = disputes.dispute_close(merchant=merchant, dispute_id=dispute.id, won=False)

    assert closed.status == Dispute.Status.LOST
    assert _balance(merchant) == withdrawn
    assert _fresh(intent).amount_disputed == 10_000
    assert not LedgerTransaction.objects.filter(
        payment_intent=intent, type="dispute_reversal"
    ).exists()
    assert verify.run().ok


@pytest.mark.parametrize("won", [True, False])
def test_a_closed_dispute_cannot_be_closed_again(merchant: Merchant, pay: Pay, won: bool) -> None:
    intent = pay("pm_card_createDispute")
    dispute = Dispute.objects.get(payment_intent=intent)
    disputes.dispute_close(merchant=merchant, dispute_id=dispute.id, won=won)
    balance = _balance(merchant)

    with pytest.raises(InvalidRequestError) as raised:
        disputes.dispute_close(merchant=merchant, dispute_id=dispute.id, won=not won)

    assert raised.value.code == "dispute_already_closed"
    assert _balance(merchant) == balance


def test_another_merchant_cannot_close_the_dispute(merchant_b: MerchantWithKey, pay: Pay) -> None:
    dispute = Dispute.objects.get(payment_intent=pay("pm_card_createDispute"))

    with pytest.raises(PayLabError) as raised:
        disputes.dispute_close(merchant=merchant_b.merchant, dispute_id=dispute.id, won=True)

    assert raised.value.status == 404
    assert Dispute.objects.get(pk=dispute.pk).status == Dispute.Status.NEEDS_RESPONSE


def test_a_disputed_charge_cannot_be_refunded(merchant: Merchant, pay: Pay) -> None:
    intent = pay("pm_card_createDispute")

    with pytest.raises(InvalidRequestError) as raised:
        refunds.refund_create(merchant=merchant, payment_intent=intent.id)

    assert raised.value.code == "charge_disputed"


def test_an_inquiry_withdraws_no_funds(merchant: Merchant, pay: Pay) -> None:
    # Given a payment with the inquiry card
    intent = pay("pm_card_createDisputeInquiry", amount=10_000)

    # Then an inquiry is open, and nothing left the balance
    dispute = Dispute.objects.get(payment_intent=intent)
    assert dispute.status == Dispute.Status.WARNING_NEEDS_RESPONSE
    assert dispute.fee == 0
    assert intent.amount_disputed == 0
    assert _balance(merchant) == _captured_net(10_000, intent.processor)
    assert not LedgerTransaction.objects.filter(payment_intent=intent, type="dispute").exists()

    # When it is closed, however it ends
    closed = disputes.dispute_close(merchant=merchant, dispute_id=dispute.id, won=False)

    # Then it is a closed warning, and still nothing moved
    assert closed.status == Dispute.Status.WARNING_CLOSED
    assert _balance(merchant) == _captured_net(10_000, intent.processor)
    assert verify.run().ok
