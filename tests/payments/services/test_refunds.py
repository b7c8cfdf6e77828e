"""Refunds: partial refunds up to what was captured, and the refund that fails later."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from accounts.models import Merchant
from config.errors import InvalidRequestError, PayLabError
from payments import selectors
from payments.models import Charge, Event, LedgerTransaction, PaymentIntent, Refund
from payments.models.ledger import Account, Side
from payments.services import intents, refunds, verify
from payments.services.refunds import PENDING_SETTLE_AFTER
from payments.state_machine import Status
from payments.tasks import settle_refund
from tests.payments.services.conftest import Pay

REFUND_FAILS_NUMBER = "4000000000005126"


def _fresh(intent: PaymentIntent) -> PaymentIntent:
    return PaymentIntent.objects.get(pk=intent.pk)


def _balance(merchant: Merchant) -> int:
    return selectors.merchant_balance(merchant.pk).get("usd", 0)


def test_partial_refunds_add_up_to_the_captured_amount_and_no_further(
    merchant: Merchant, pay: Pay
) -> None:
    intent = pay(amount=10_000)

    first = refunds.refund_create(merchant=merchant, payment_intent=intent.id, amount=4_000)
    second = refunds.refund_create(merchant=merchant, charge=intent.latest_charge_id, amount=6_000)

    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert _fresh(intent).amount_refunded == 10_000
    assert Charge.objects.get(pk=intent.latest_charge_id).amount_refunded == 10_000
    with pytest.raises(InvalidRequestError) as raised:
        refunds.refund_create(merchant=merchant, payment_intent=intent.id, amount=1)
    assert raised.value.code == "charge_already_refunded"
    assert verify.run().ok


def test_a_refund_larger_than_what_is_left_is_refused_and_changes_nothing(
    merchant: Merchant, pay: Pay
) -> None:
    intent = pay(manual=True, amount=10_000)
    intents.payment_intent_capture(merchant=merchant, intent_id=intent.id, amount_to_capture=3_000)
    version = _fresh(intent).version

    with pytest.raises(InvalidRequestError) as raised:
        refunds.refund_create(merchant=merchant, payment_intent=intent.id, amount=3_001)

    assert (raised.value.code, raised.value.param) == ("amount_too_large", "amount")
    assert _fresh(intent).version == version
    assert not Refund.objects.filter(payment_intent=intent).exists()


def test_an_uncaptured_payment_cannot_be_refunded(merchant: Merchant, pay: Pay) -> None:
    intent = pay(manual=True)

    with pytest.raises(PayLabError) as raised:
        refunds.refund_create(merchant=merchant, payment_intent=intent.id)

    assert raised.value.code == "payment_intent_unexpected_state"
    assert "status is requires_capture" in raised.value.message


@pytest.mark.parametrize("how", ["pm_card_refundFail", "card number"])
def test_the_refund_fails_card_refunds_pending_then_fails_and_puts_the_money_back(
    merchant: Merchant, pay: Pay, now: datetime, how: str
) -> None:
    # Given a payment with the refund-fails card, paid by token or by number
    if how == "card number":
        intent = intents.payment_intent_create(
            merchant=merchant,
            amount=10_000,
            currency="usd",
            capture_method="automatic",
            payment_method_data={
                "type": "card",
                "card": {"number": REFUND_FAILS_NUMBER, "exp_month": 12, "exp_year": now.year + 2},
            },
            confirm=True,
            now=now,
        ).intent
    else:
        intent = pay("pm_card_refundFail", amount=10_000)
    paid = _balance(merchant)

    # When it is refunded in part
    refund = refunds.refund_create(
        merchant=merchant, payment_intent=intent.id, amount=4_000, now=now
    )

    # Then the refund is pending and the money has left the balance
    assert refund.status == Refund.Status.PENDING
    assert refund.settles_at == now + PENDING_SETTLE_AFTER
    assert _balance(merchant) == paid - 4_000
    assert _fresh(intent).amount_refunded == 4_000

    # When the settle task runs
    settle_refund(refund.id)

    # Then it failed, the money is back, and the payment is refundable again
    refund = Refund.objects.get(pk=refund.pk)
    intent = _fresh(intent)
    assert refund.status == Refund.Status.FAILED
    assert refund.failure_reason
    assert _balance(merchant) == paid
    assert intent.amount_refunded == 0
    assert intent.status == Status.SUCCEEDED
    assert Charge.objects.get(pk=intent.latest_charge_id).amount_refunded == 0
    [failure] = LedgerTransaction.objects.filter(
        payment_intent=intent, type=LedgerTransaction.Type.REFUND_FAILURE
    )
    assert {(e.account, e.side, e.amount) for e in failure.entries.all()} == {
        (Account.PROCESSOR_CLEARING, Side.DEBIT, 4_000),
        (Account.MERCHANT_BALANCE, Side.CREDIT, 4_000),
    }
    assert Event.objects.filter(payment_intent=intent, type="refund.failed").count() == 1
    assert verify.run().ok


def test_settling_a_settled_refund_changes_nothing(merchant: Merchant, pay: Pay) -> None:
    intent = pay("pm_card_refundFail")
    refund = refunds.refund_create(merchant=merchant, payment_intent=intent.id)
    settle_refund(refund.id)
    version = _fresh(intent).version
    ledger = LedgerTransaction.objects.filter(payment_intent=intent).count()

    settle_refund(refund.id)

    assert _fresh(intent).version == version
    assert LedgerTransaction.objects.filter(payment_intent=intent).count() == ledger
    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.FAILED


def test_the_sweep_settles_pending_refunds_once_due(
    merchant: Merchant, pay: Pay, now: datetime
) -> None:
    intent = pay("pm_card_refundFail")
    refund = refunds.refund_create(merchant=merchant, payment_intent=intent.id, now=now)

    assert refunds.refunds_settle_due(now=now + PENDING_SETTLE_AFTER - timedelta(seconds=1)) == 0
    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.PENDING
    assert refunds.refunds_settle_due(now=now + PENDING_SETTLE_AFTER) == 1
    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.FAILED


def test_an_ordinary_card_refund_succeeds_at_once(merchant: Merchant, pay: Pay) -> None:
    intent = pay()
    paid = _balance(merchant)

    refund = refunds.refund_create(merchant=merchant, payment_intent=intent.id, reason="duplicate")

    assert (refund.status, refund.settles_at, refund.reason) == ("succeeded", None, "duplicate")
    assert _balance(merchant) == paid - intent.amount
    settle_refund(refund.id)
    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.SUCCEEDED
