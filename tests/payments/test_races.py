"""Races on one payment, on PostgreSQL with real threads (DESIGN rules 2 and 6).

Every test lines N threads up on a `threading.Barrier` and fires at once;
each thread works on its own database connection (Django's connections are
per thread) and closes it when done, handing it back to the pool. The
assertions are about what was committed: how many operations won, what the
losers were told, and that the ledger and the event log still agree
(`verify`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.db import connection

from config.errors import PayLabError
from payments.models import Charge, IdempotencyKey, PaymentIntent, Refund
from payments.models.intents import CaptureMethod
from payments.models.ledger import LedgerTransaction
from payments.services import intents, refunds, verify
from payments.state_machine import Status
from tests.conftest import MerchantWithKey

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@dataclass(frozen=True)
class Result:
    value: Any = None
    error: PayLabError | None = None


def race(count: int, work: Callable[[int], Any]) -> list[Result]:
    """Run `work(i)` in `count` threads released together; the results in order.

    A `PayLabError` is an answer, not a failure; anything else propagates.
    """
    barrier = threading.Barrier(count, timeout=30)

    def run(index: int) -> Result:
        try:
            barrier.wait()
            try:
                return Result(value=work(index))
            except PayLabError as error:
                return Result(error=error)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def assert_verified() -> None:
    report = verify.run()
    assert report.ok, report.violations


def authorised(merchant_a: MerchantWithKey, amount: int) -> PaymentIntent:
    outcome = intents.payment_intent_create(
        merchant=merchant_a.merchant,
        amount=amount,
        currency="usd",
        capture_method=CaptureMethod.MANUAL,
        payment_method="pm_card_visa",
        confirm=True,
    )
    assert outcome.intent.status == Status.REQUIRES_CAPTURE
    return outcome.intent


def test_concurrent_captures_of_one_authorisation_capture_it_once(
    merchant_a: MerchantWithKey,
) -> None:
    # given an authorised manual-capture payment
    intent = authorised(merchant_a, 10_000)

    # when 20 threads capture it at once
    results = race(
        20,
        lambda _: intents.payment_intent_capture(merchant=merchant_a.merchant, intent_id=intent.id),
    )

    # then exactly one captured it; the others found it no longer capturable
    winners = [r for r in results if r.error is None]
    losers = [r.error for r in results if r.error is not None]
    assert len(winners) == 1
    assert len(losers) == 19
    assert {e.code for e in losers} == {"payment_intent_unexpected_state"}
    intent.refresh_from_db()
    assert (intent.status, intent.amount_received, intent.amount_capturable) == (
        Status.SUCCEEDED,
        10_000,
        0,
    )
    assert (
        LedgerTransaction.objects.filter(
            payment_intent=intent, type=LedgerTransaction.Type.CHARGE
        ).count()
        == 1
    )
    assert_verified()


def test_concurrent_refunds_never_exceed_the_captured_amount(
    merchant_a: MerchantWithKey,
) -> None:
    # given a captured payment of 100.00
    intent = authorised(merchant_a, 10_000)
    intents.payment_intent_capture(merchant=merchant_a.merchant, intent_id=intent.id)

    # when 10 threads each refund 30.00 of it at once
    results = race(
        10,
        lambda _: refunds.refund_create(
            merchant=merchant_a.merchant, payment_intent=intent.id, amount=3_000
        ),
    )

    # then three fit, the seven others are refused for the amount, and the
    # payment, its refunds and the ledger agree
    assert len([r for r in results if r.error is None]) == 3
    assert [r.error.code for r in results if r.error is not None] == ["amount_too_large"] * 7
    intent.refresh_from_db()
    assert intent.amount_refunded == 9_000
    assert Refund.objects.filter(payment_intent=intent).count() == 3
    assert (
        LedgerTransaction.objects.filter(
            payment_intent=intent, type=LedgerTransaction.Type.REFUND
        ).count()
        == 3
    )
    assert_verified()


def test_concurrent_confirms_of_one_payment_charge_it_once(merchant_a: MerchantWithKey) -> None:
    # given a payment with a card, awaiting confirmation
    intent = intents.payment_intent_create(
        merchant=merchant_a.merchant, amount=2_500, currency="usd", payment_method="pm_card_visa"
    ).intent
    assert intent.status == Status.REQUIRES_CONFIRMATION

    # when two threads confirm it at once
    results = race(
        2,
        lambda _: intents.payment_intent_confirm(merchant=merchant_a.merchant, intent_id=intent.id),
    )

    # then one charged it and the other found it already confirmed
    assert [r.value.intent.status for r in results if r.error is None] == [Status.SUCCEEDED]
    assert [r.error.code for r in results if r.error is not None] == [
        "payment_intent_unexpected_state"
    ]
    assert Charge.objects.filter(payment_intent=intent).count() == 1
    assert (
        LedgerTransaction.objects.filter(
            payment_intent=intent, type=LedgerTransaction.Type.CHARGE
        ).count()
        == 1
    )
    assert_verified()


def test_concurrent_posts_with_one_idempotency_key_create_one_payment(
    merchant_a: MerchantWithKey, live_server: Any
) -> None:
    # given 20 clients sending the same create-and-confirm with one key
    url = f"{live_server.url}/v1/payment_intents"
    form = {
        "amount": "4200",
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "metadata[order]": "42",
    }
    headers = {"Authorization": f"Bearer {merchant_a.secret}", "Idempotency-Key": "order-42"}

    def post(_: int) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            return client.post(url, data=form, headers=headers)

    # when they all post at once to a threaded server
    responses = [r.value for r in race(20, post)]

    # then one payment was made and charged once; every answer is that
    # payment, byte for byte, or a 409 asking to retry — never another object
    assert PaymentIntent.objects.filter(merchant=merchant_a.merchant).count() == 1
    intent = PaymentIntent.objects.get(merchant=merchant_a.merchant)
    assert intent.status == Status.SUCCEEDED
    assert LedgerTransaction.objects.filter(payment_intent=intent).count() == 1
    assert IdempotencyKey.objects.filter(merchant=merchant_a.merchant).count() == 1
    answered = [r for r in responses if r.status_code != 409]
    in_use = [r for r in responses if r.status_code == 409]
    assert answered, [r.status_code for r in responses]
    assert {r.status_code for r in answered} == {200}
    assert {r.content for r in answered} == {answered[0].content}
    assert answered[0].json()["id"] == intent.id
    assert {r.json()["error"]["code"] for r in in_use} <= {"idempotency_key_in_use"}
    assert_verified()
