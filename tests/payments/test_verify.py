"""`manage.py verify`: quiet on a healthy mix of payments, loud on tampering."""

from __future__ import annotations

from datetime import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts.models import Merchant
from payments.models import Customer, Dispute, Event, LedgerEntry, PaymentIntent
from payments.models.intents import CaptureMethod
from payments.services import customers, disputes, intents, refunds
from payments.tasks import settle_refund
from tests.conftest import MerchantWithKey


@pytest.fixture
def merchant(merchant_a: MerchantWithKey) -> Merchant:
    return merchant_a.merchant


def _pay(
    merchant: Merchant, card: str = "pm_card_visa", *, amount: int = 10_000, manual: bool = False
) -> PaymentIntent:
    outcome = intents.payment_intent_create(
        merchant=merchant,
        amount=amount,
        currency="usd",
        capture_method=CaptureMethod.MANUAL if manual else CaptureMethod.AUTOMATIC,
        payment_method=card,
        confirm=True,
    )
    return PaymentIntent.objects.get(pk=outcome.intent.pk)


@pytest.fixture
def mix(merchant: Merchant, merchant_b: MerchantWithKey) -> dict[str, PaymentIntent]:
    """A payment of every kind, for two merchants, all made through services."""
    now: datetime = timezone.now()
    customer = customers.customer_create(
        merchant=merchant, fields={"email": "ada@example.com"}, metadata={"tier": "gold"}
    )
    paid = intents.payment_intent_create(
        merchant=merchant,
        amount=10_000,
        currency="usd",
        capture_method=CaptureMethod.AUTOMATIC,
        customer=customer.id,
        payment_method_data={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": now.year + 2},
        },
        confirm=True,
    ).intent
    refunds.refund_create(merchant=merchant, payment_intent=paid.id, amount=1_000)
    captured = _pay(merchant, manual=True)
    intents.payment_intent_capture(merchant=merchant, intent_id=captured.id, amount_to_capture=700)
    authorised = _pay(merchant, manual=True)
    canceled = _pay(merchant, manual=True)
    intents.payment_intent_cancel(merchant=merchant, intent_id=canceled.id)
    _pay(merchant, "pm_card_visa_chargeDeclined")
    _pay(merchant, "pm_card_threeDSecure2Required")
    lost = _pay(merchant, "pm_card_createDispute")
    disputes.dispute_close(
        merchant=merchant, dispute_id=Dispute.objects.get(payment_intent=lost).id, won=False
    )
    won = _pay(merchant, "pm_card_createDispute")
    disputes.dispute_close(
        merchant=merchant, dispute_id=Dispute.objects.get(payment_intent=won).id, won=True
    )
    failing = _pay(merchant, "pm_card_refundFail")
    settle_refund(refunds.refund_create(merchant=merchant, payment_intent=failing.id).id)
    _pay(merchant_b.merchant, amount=500)
    return {"paid": paid, "captured": captured, "authorised": authorised, "canceled": canceled}


def _verify() -> str:
    out = StringIO()
    call_command("verify", stdout=out, stderr=out)
    return out.getvalue()


def _verify_fails() -> tuple[CommandError, str]:
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify", stdout=out, stderr=out)
    return raised.value, out.getvalue()


def test_verify_passes_on_a_mix_of_payments(mix: dict[str, PaymentIntent]) -> None:
    output = _verify()

    assert "verify: OK" in output
    assert "payments" in output


def test_verify_fails_when_a_payment_is_changed_behind_the_services_back(
    mix: dict[str, PaymentIntent],
) -> None:
    paid = mix["paid"]
    PaymentIntent.objects.filter(pk=paid.pk).update(amount_received=paid.amount_received - 1)

    error, output = _verify_fails()

    assert error.returncode != 0
    assert "violation" in str(error)
    assert f"payment {paid.id}: amount_received: stored 9999, rebuilt 10000" in output
    assert "ledger balance" in output  # the balance no longer matches the payments either


def test_verify_fails_when_an_event_is_rewritten_in_the_database(
    mix: dict[str, PaymentIntent],
) -> None:
    # The ORM refuses to update events; raw SQL is the only way to tamper.
    canceled = mix["canceled"]
    last = Event.objects.filter(payment_intent=canceled).order_by("-sequence").first()
    assert last is not None
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Event._meta.db_table} SET to_status = %s WHERE id = %s",  # noqa: S608
            ["succeeded", last.pk],
        )

    _, output = _verify_fails()

    assert f"payment {canceled.id}: status: stored 'canceled', rebuilt 'succeeded'" in output


def test_verify_fails_when_a_ledger_entry_is_altered(mix: dict[str, PaymentIntent]) -> None:
    captured = mix["captured"]
    entry = LedgerEntry.objects.filter(
        transaction__payment_intent=captured, account="processor_clearing"
    ).get()
    LedgerEntry.objects.filter(pk=entry.pk).update(amount=entry.amount + 1)

    error, output = _verify_fails()

    assert f"ledger {entry.transaction_id} (usd): debits 701 != credits 700" in output
    assert error.returncode != 0


def test_verify_fails_when_a_card_number_is_stored(
    merchant: Merchant, mix: dict[str, PaymentIntent]
) -> None:
    customer = Customer.objects.get(merchant=merchant)
    Customer.objects.filter(pk=customer.pk).update(metadata={"note": "4242424242424242"})

    _, output = _verify_fails()

    assert f"Customer {customer.pk}.metadata holds a card number ending 4242" in output
    assert "4242424242424242" not in output


@pytest.mark.parametrize(
    "note",
    ["4242424242424241", "order 12345678901234", "4242 4242"],
    ids=["fails-luhn", "order-number", "short"],
)
def test_verify_ignores_digits_that_are_not_a_card_number(
    merchant: Merchant, mix: dict[str, PaymentIntent], note: str
) -> None:
    customer = Customer.objects.get(merchant=merchant)
    Customer.objects.filter(pk=customer.pk).update(metadata={"note": note})

    assert "verify: OK" in _verify()


def test_verify_passes_when_only_metadata_changed_through_the_services(
    merchant: Merchant, mix: dict[str, PaymentIntent]
) -> None:
    # Given metadata changes on payments in every kind of status, and on a customer
    for intent in mix.values():
        intents.payment_intent_update(
            merchant=merchant, intent_id=intent.id, fields={}, metadata={"order": "42"}
        )
    customer = Customer.objects.get(merchant=merchant)
    customers.customer_update(
        merchant=merchant, customer_id=customer.id, fields={}, metadata={"tier": "silver"}
    )

    # Then every payment still equals its rebuild
    assert "verify: OK" in _verify()
    assert PaymentIntent.objects.get(pk=mix["paid"].pk).metadata == {"order": "42"}


@pytest.mark.parametrize("kind", ["paid", "declined"])
def test_verify_fails_when_a_payments_card_last4_is_tampered(
    merchant: Merchant, mix: dict[str, PaymentIntent], kind: str
) -> None:
    # Given a payment whose card column no longer matches its card: a paid
    # one (read from its payment method) or a declined one (whose payment
    # method was cleared: read from its failed attempt)
    intent = (
        mix["paid"]
        if kind == "paid"
        else PaymentIntent.objects.get(merchant=merchant, card_last4="0002")
    )
    PaymentIntent.objects.filter(pk=intent.pk).update(card_last4="1111")

    _, output = _verify_fails()

    want = "4242" if kind == "paid" else "0002"
    assert f"payment {intent.pk}: card visa 1111, its payment methods say visa {want}" in output


def test_verify_passes_on_the_card_columns_of_a_mix_of_payments(
    mix: dict[str, PaymentIntent],
) -> None:
    # The mix's declined payment (no payment method) and 3-D Secure payment
    # (requires_action) carry their cards too.
    assert PaymentIntent.objects.filter(card_last4="0002", payment_method=None).exists()
    assert PaymentIntent.objects.exclude(card_last4="").count() == PaymentIntent.objects.count()
    assert "verify: OK" in _verify()
