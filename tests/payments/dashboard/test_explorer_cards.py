"""The explorer finds a payment by the card it last tried — its brand filter
and last4 search read the intent's card columns — so a declined payment,
whose payment method a failed confirmation clears (as in Stripe), is found
by its card; a payment retried with another card shows and is found by the
second."""

from __future__ import annotations

import pytest

from accounts.models import User
from payments import selectors
from payments.models import PaymentIntent
from payments.selectors import PaymentSearch
from payments.services import intents
from tests.conftest import MerchantWithKey, logged_in
from tests.payments.dashboard.conftest import htmx, pay

pytestmark = pytest.mark.django_db

LIST = "/payments/"


def listed(user: User, **params: str) -> set[str]:
    """The ids of the payments the explorer page lists."""
    response = logged_in(user).get(LIST, params, **htmx())
    assert response.status_code == 200
    body = response.content.decode()
    return {pk for pk in PaymentIntent.objects.values_list("id", flat=True) if pk in body}


def selected(search: PaymentSearch) -> set[str]:
    return {row.id for row in selectors.payment_search(search).rows}


@pytest.fixture
def declined(merchant_a: MerchantWithKey) -> PaymentIntent:
    intent = pay(merchant_a.merchant, card="pm_card_visa_chargeDeclined")  # visa 0002
    assert PaymentIntent.objects.get(pk=intent.pk).payment_method_id is None
    return intent


def test_a_declined_payment_is_found_by_its_cards_last4(
    merchant_a: MerchantWithKey,
    merchant_b: MerchantWithKey,
    declined: PaymentIntent,
    owner_a: User,
    operator_user: User,
) -> None:
    pay(merchant_a.merchant, card="pm_card_visa")  # 4242
    theirs = pay(merchant_b.merchant, card="pm_card_visa_chargeDeclined")

    assert listed(owner_a, q="0002") == {declined.id}
    assert listed(operator_user, q="0002") == {declined.id, theirs.id}
    assert selected(PaymentSearch(scope=merchant_a.merchant.pk, search="0002")) == {declined.id}


def test_a_declined_payment_is_found_by_its_cards_brand(
    merchant_a: MerchantWithKey, declined: PaymentIntent, owner_a: User
) -> None:
    amex = pay(merchant_a.merchant, card="pm_card_amex")

    assert listed(owner_a, brand="visa") == {declined.id}
    assert listed(owner_a, brand="amex") == {amex.id}
    scope = merchant_a.merchant.pk
    assert selected(PaymentSearch(scope=scope, brand="visa")) == {declined.id}
    assert selected(PaymentSearch(scope=scope, brand="visa", search="0002")) == {declined.id}
    assert selected(PaymentSearch(scope=scope, brand="mastercard")) == set()


def test_the_page_shows_the_declined_payments_card(declined: PaymentIntent, owner_a: User) -> None:
    response = logged_in(owner_a).get(LIST, {"q": "0002"}, **htmx())

    assert "visa •••• 0002" in response.content.decode()


def test_a_payment_declined_with_card_a_then_paid_with_card_b_shows_card_b(
    merchant_a: MerchantWithKey, declined: PaymentIntent, owner_a: User
) -> None:
    # Given a payment declined with visa 0002, then confirmed with mastercard 4444
    intents.payment_intent_confirm(
        merchant=merchant_a.merchant, intent_id=declined.id, payment_method="pm_card_mastercard"
    )

    # Then the explorer shows card B and finds it by card B only
    body = logged_in(owner_a).get(LIST, **htmx()).content.decode()
    assert "mastercard •••• 4444" in body
    assert "0002" not in body
    assert listed(owner_a, q="4444") == {declined.id}
    assert listed(owner_a, brand="mastercard") == {declined.id}
    assert listed(owner_a, q="0002") == set()
    scope = merchant_a.merchant.pk
    assert selected(PaymentSearch(scope=scope, search="4444")) == {declined.id}
    assert selected(PaymentSearch(scope=scope, brand="visa")) == set()


def test_the_csv_export_names_the_card_last_tried(declined: PaymentIntent, owner_a: User) -> None:
    response = logged_in(owner_a).get("/payments/export.csv", {"q": "0002"})

    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    row = next(line for line in body.splitlines() if line.startswith(declined.id))
    assert ",visa,0002," in row
