"""The double-entry ledger: every money movement balances; the balance is the ledger's."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import pytest

from accounts.models import Merchant
from payments import processing, selectors
from payments.models import Charge, LedgerEntry, LedgerTransaction, PaymentIntent
from payments.models.ledger import Account, Side
from payments.services import disputes, intents, refunds, verify
from payments.services.records import Entry, LedgerImbalance, post_ledger
from tests.conftest import MerchantWithKey
from tests.payments.services.conftest import Pay

T = LedgerTransaction.Type


def _entries(txn: LedgerTransaction) -> set[tuple[str, str, int]]:
    return {(e.account, e.side, e.amount) for e in txn.entries.all()}


def _assert_balanced(txn: LedgerTransaction) -> None:
    debits = sum(e.amount for e in txn.entries.all() if e.side == Side.DEBIT)
    credits = sum(e.amount for e in txn.entries.all() if e.side == Side.CREDIT)
    assert debits == credits > 0
    assert {e.currency for e in txn.entries.all()} == {txn.currency}
    assert txn.amount == txn.net + txn.fee


def _ledger_of(intent: PaymentIntent, type: str) -> list[LedgerTransaction]:
    return list(LedgerTransaction.objects.filter(payment_intent=intent, type=type).order_by("id"))


def _balance(merchant: Merchant, currency: str) -> int:
    return selectors.merchant_balance(merchant.pk).get(currency, 0)


@pytest.mark.parametrize(("currency", "amount"), [("usd", 10_000), ("jpy", 5_000), ("kwd", 12_345)])
def test_a_capture_posts_the_amount_to_clearing_and_the_balance_less_the_fee(
    pay: Pay, currency: str, amount: int
) -> None:
    intent = pay(amount=amount, currency=currency)

    [txn] = _ledger_of(intent, T.CHARGE)
    fee = processing.capture_fee(processor=intent.processor, amount=amount, currency=currency)
    _assert_balanced(txn)
    assert 0 < fee < amount
    assert _entries(txn) == {
        (Account.PROCESSOR_CLEARING, Side.DEBIT, amount),
        (Account.MERCHANT_BALANCE, Side.CREDIT, amount - fee),
        (Account.FEE_REVENUE, Side.CREDIT, fee),
    }
    assert (txn.currency, txn.net, txn.fee, txn.source) == (
        currency,
        amount - fee,
        fee,
        intent.latest_charge_id,
    )
    assert Charge.objects.get(pk=intent.latest_charge_id).balance_transaction_id == txn.id


def test_a_partial_capture_posts_only_the_captured_part(merchant: Merchant, pay: Pay) -> None:
    intent = pay(manual=True, amount=10_000)
    assert not LedgerTransaction.objects.filter(payment_intent=intent).exists()

    intents.payment_intent_capture(merchant=merchant, intent_id=intent.id, amount_to_capture=4_000)

    [txn] = _ledger_of(intent, T.CHARGE)
    _assert_balanced(txn)
    assert (Account.PROCESSOR_CLEARING, Side.DEBIT, 4_000) in _entries(txn)


def test_a_refund_posts_a_balanced_withdrawal_per_refund(merchant: Merchant, pay: Pay) -> None:
    intent = pay(amount=10_000)

    refunds.refund_create(merchant=merchant, payment_intent=intent.id, amount=3_000)
    refunds.refund_create(merchant=merchant, payment_intent=intent.id, amount=2_000)

    txns = _ledger_of(intent, T.REFUND)
    assert len(txns) == 2
    for txn in txns:
        _assert_balanced(txn)
        assert txn.fee == 0
    assert sorted(txn.net for txn in txns) == [-3_000, -2_000]
    assert {
        (Account.MERCHANT_BALANCE, Side.DEBIT, 3_000),
        (Account.PROCESSOR_CLEARING, Side.CREDIT, 3_000),
    } in [_entries(txn) for txn in txns]


def test_a_dispute_posts_the_amount_and_the_dispute_fee(pay: Pay) -> None:
    intent = pay("pm_card_createDispute", amount=10_000)

    [txn] = _ledger_of(intent, T.DISPUTE)
    fee = processing.dispute_fee(currency="usd")
    _assert_balanced(txn)
    assert _entries(txn) == {
        (Account.MERCHANT_BALANCE, Side.DEBIT, 10_000 + fee),
        (Account.PROCESSOR_CLEARING, Side.CREDIT, 10_000),
        (Account.FEE_REVENUE, Side.CREDIT, fee),
    }


def test_a_won_dispute_posts_a_balanced_reversal(merchant: Merchant, pay: Pay) -> None:
    intent = pay("pm_card_createDispute", amount=10_000)

    disputes.dispute_close(merchant=merchant, dispute_id=intent.disputes.get().id, won=True)

    [txn] = _ledger_of(intent, T.DISPUTE_REVERSAL)
    _assert_balanced(txn)
    assert txn.net == 10_000


@pytest.mark.parametrize("card", ["pm_card_visa_chargeDeclined", "pm_card_threeDSecure2Required"])
def test_no_money_moves_without_a_capture(pay: Pay, card: str) -> None:
    intent = pay(card)

    assert not LedgerTransaction.objects.filter(payment_intent=intent).exists()


def test_a_voided_authorisation_posts_nothing(merchant: Merchant, pay: Pay) -> None:
    intent = pay(manual=True)

    intents.payment_intent_cancel(merchant=merchant, intent_id=intent.id)

    assert not LedgerTransaction.objects.filter(payment_intent=intent).exists()


def test_the_merchant_balance_is_the_sum_of_its_ledger(
    merchant: Merchant, merchant_b: MerchantWithKey, pay: Pay, now: datetime
) -> None:
    # Given a mix of payments, refunds and a dispute in two currencies
    paid = pay(amount=10_000)
    refunds.refund_create(merchant=merchant, payment_intent=paid.id, amount=2_500)
    yen = pay(amount=700, currency="jpy")
    disputed = pay("pm_card_createDispute", amount=3_000)
    authorised = pay(manual=True, amount=9_000)
    intents.payment_intent_capture(
        merchant=merchant, intent_id=authorised.id, amount_to_capture=8_000
    )
    pay("pm_card_visa_chargeDeclined", amount=9_999)

    # When the balance is read
    balance = selectors.merchant_balance(merchant.pk)

    # Then it is the signed sum of the merchant_balance entries…
    summed: dict[str, int] = defaultdict(int)
    for entry in LedgerEntry.objects.filter(merchant=merchant, account=Account.MERCHANT_BALANCE):
        summed[entry.currency] += entry.amount if entry.side == Side.CREDIT else -entry.amount
    assert balance == dict(summed)
    # …which is what the payments say: received - refunded - disputed - fees
    # (each at the fee model of the processor it was routed to)
    fees = processing.capture_fee(processor=paid.processor, amount=10_000, currency="usd")
    fees += processing.capture_fee(processor=disputed.processor, amount=3_000, currency="usd")
    fees += processing.capture_fee(processor=authorised.processor, amount=8_000, currency="usd")
    fees += processing.dispute_fee(currency="usd")
    assert balance["usd"] == 10_000 - 2_500 + 3_000 - 3_000 + 8_000 - fees
    assert balance["jpy"] == 700 - processing.capture_fee(
        processor=yen.processor, amount=700, currency="jpy"
    )
    # …and another merchant's ledger is its own
    assert selectors.merchant_balance(merchant_b.merchant.pk) == {}
    assert verify.run().ok


@pytest.mark.parametrize(
    "entries",
    [
        [
            Entry(Account.PROCESSOR_CLEARING, Side.DEBIT, 100),
            Entry(Account.MERCHANT_BALANCE, Side.CREDIT, 99),
        ],
        [Entry(Account.PROCESSOR_CLEARING, Side.DEBIT, 100)],
        [
            Entry(Account.PROCESSOR_CLEARING, Side.DEBIT, -5),
            Entry(Account.MERCHANT_BALANCE, Side.CREDIT, -5),
        ],
        [],
    ],
    ids=["debits-exceed-credits", "one-sided", "negative", "empty"],
)
def test_post_ledger_refuses_an_unbalanced_posting_and_writes_nothing(
    merchant: Merchant, now: datetime, entries: list[Entry]
) -> None:
    with pytest.raises(LedgerImbalance):
        post_ledger(
            merchant_id=merchant.pk,
            type=T.CHARGE,
            currency="usd",
            source="ch_test",
            entries=entries,
            now=now,
        )

    assert not LedgerTransaction.objects.filter(merchant=merchant).exists()
    assert not LedgerEntry.objects.filter(merchant=merchant).exists()


def test_post_ledger_reports_the_merchant_balance_effect(merchant: Merchant, now: datetime) -> None:
    txn = post_ledger(
        merchant_id=merchant.pk,
        type=T.CHARGE,
        currency="usd",
        source="ch_test",
        entries=[
            Entry(Account.PROCESSOR_CLEARING, Side.DEBIT, 1_000),
            Entry(Account.MERCHANT_BALANCE, Side.CREDIT, 940),
            Entry(Account.FEE_REVENUE, Side.CREDIT, 60),
        ],
        now=now,
    )

    assert (txn.amount, txn.fee, txn.net) == (1_000, 60, 940)
    assert _balance(merchant, "usd") == 940
