"""The official `stripe` package against a live PayLab (DESIGN: "must work
unchanged").

A threaded PayLab server (pytest-django's `live_server`) answers the real
library over real HTTP, through its default HTTP client, with telemetry off.
Every case runs twice: through the module-level API (`stripe.api_base`,
`stripe.PaymentIntent.create`) and through `stripe.StripeClient` with
`base_addresses`, the style stripe-python recommends since v8.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import pytest
import stripe
from stripe import ListObject

from payments.models import Charge, PaymentIntent, Refund
from payments.models.ledger import LedgerTransaction
from payments.services import verify
from tests.conftest import MerchantWithKey

pytestmark = pytest.mark.django_db(transaction=True)


class Gateway(Protocol):
    """The few calls these tests make, whichever style of the library makes them."""

    def create_customer(self, **params: Any) -> Any: ...
    def create_intent(self, *, idempotency_key: str | None = None, **params: Any) -> Any: ...
    def confirm_intent(self, intent_id: str, **params: Any) -> Any: ...
    def capture_intent(self, intent_id: str, **params: Any) -> Any: ...
    def retrieve_intent(self, intent_id: str, **params: Any) -> Any: ...
    def list_intents(self, **params: Any) -> ListObject[Any]: ...
    def create_refund(self, **params: Any) -> Any: ...


class ModuleLevel:
    """`stripe.PaymentIntent.create(...)` with the global `api_key` and `api_base`."""

    def create_customer(self, **params: Any) -> Any:
        return stripe.Customer.create(**params)

    def create_intent(self, *, idempotency_key: str | None = None, **params: Any) -> Any:
        if idempotency_key is not None:
            params["idempotency_key"] = idempotency_key
        return stripe.PaymentIntent.create(**params)

    def confirm_intent(self, intent_id: str, **params: Any) -> Any:
        return stripe.PaymentIntent.confirm(intent_id, **params)

    def capture_intent(self, intent_id: str, **params: Any) -> Any:
        return stripe.PaymentIntent.capture(intent_id, **params)

    def retrieve_intent(self, intent_id: str, **params: Any) -> Any:
        return stripe.PaymentIntent.retrieve(intent_id, **params)

    def list_intents(self, **params: Any) -> ListObject[Any]:
        return stripe.PaymentIntent.list(**params)

    def create_refund(self, **params: Any) -> Any:
        return stripe.Refund.create(**params)


class ClientStyle:
    """`stripe.StripeClient(key, base_addresses={"api": url}).v1.…`."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.v1 = client.v1

    def create_customer(self, **params: Any) -> Any:
        return self.v1.customers.create(params)  # type: ignore[arg-type]

    def create_intent(self, *, idempotency_key: str | None = None, **params: Any) -> Any:
        options: Any = {"idempotency_key": idempotency_key} if idempotency_key else None
        return self.v1.payment_intents.create(params, options)  # type: ignore[arg-type]

    def confirm_intent(self, intent_id: str, **params: Any) -> Any:
        return self.v1.payment_intents.confirm(intent_id, params)  # type: ignore[arg-type]

    def capture_intent(self, intent_id: str, **params: Any) -> Any:
        return self.v1.payment_intents.capture(intent_id, params)  # type: ignore[arg-type]

    def retrieve_intent(self, intent_id: str, **params: Any) -> Any:
        return self.v1.payment_intents.retrieve(intent_id, params)  # type: ignore[arg-type]

    def list_intents(self, **params: Any) -> ListObject[Any]:
        return self.v1.payment_intents.list(params)  # type: ignore[arg-type]

    def create_refund(self, **params: Any) -> Any:
        return self.v1.refunds.create(params)  # type: ignore[arg-type]


@pytest.fixture
def paylab_url(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The live server, with the library's globals pointed at it and restored after."""
    # No telemetry headers; the default HTTP client, created afresh for this
    # server rather than one a previous test left behind.
    monkeypatch.setattr(stripe, "enable_telemetry", False)
    monkeypatch.setattr(stripe, "default_http_client", None)
    monkeypatch.setattr(stripe, "api_base", live_server.url)
    yield live_server.url


@pytest.fixture(params=["module", "client"])
def gateway(
    request: pytest.FixtureRequest,
    paylab_url: str,
    merchant_a: MerchantWithKey,
    monkeypatch: pytest.MonkeyPatch,
) -> Gateway:
    if request.param == "module":
        monkeypatch.setattr(stripe, "api_key", merchant_a.secret)
        return ModuleLevel()
    # The module's key stays unset: the client must carry its own.
    monkeypatch.setattr(stripe, "api_key", None)
    return ClientStyle(stripe.StripeClient(merchant_a.secret, base_addresses={"api": paylab_url}))


def assert_verified() -> None:
    report = verify.run()
    assert report.ok, report.violations


def test_the_library_talks_to_paylab_with_its_default_client_and_no_telemetry(
    paylab_url: str, merchant_a: MerchantWithKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the module configured only by api_key and api_base
    monkeypatch.setattr(stripe, "api_key", merchant_a.secret)

    # when it makes a call
    customer = stripe.Customer.create(email="jenny@example.com")

    # then the call reached PayLab through the library's own HTTP client
    assert customer.id.startswith("cus_")
    assert stripe.default_http_client is not None
    assert type(stripe.default_http_client).__module__ == "stripe._http_client"
    assert urlsplit(stripe.api_base).hostname in ("localhost", "127.0.0.1")


def test_customer_create(gateway: Gateway) -> None:
    customer = gateway.create_customer(
        email="jenny@example.com", name="Jenny Rosen", metadata={"crm": "42"}
    )

    assert isinstance(customer, stripe.Customer)
    assert customer.id.startswith("cus_")
    assert (customer.email, customer.name, customer.to_dict()["metadata"]) == (
        "jenny@example.com",
        "Jenny Rosen",
        {"crm": "42"},
    )
    assert customer.livemode is False


def test_create_and_confirm_with_pm_card_visa_succeeds(gateway: Gateway) -> None:
    # given a payment created without confirming
    intent = gateway.create_intent(
        amount=2_000, currency="usd", payment_method_types=["card"], metadata={"order": "7"}
    )
    assert isinstance(intent, stripe.PaymentIntent)
    assert intent.status == "requires_payment_method"

    # when it is confirmed with the Visa test payment method
    confirmed = gateway.confirm_intent(intent.id, payment_method="pm_card_visa")

    # then it succeeded, charged once for the whole amount
    assert confirmed.id == intent.id
    assert (confirmed.status, confirmed.amount_received) == ("succeeded", 2_000)
    assert confirmed.metadata.to_dict() == {"order": "7"}
    charge = Charge.objects.get(payment_intent_id=intent.id)
    assert (confirmed.latest_charge, charge.amount_captured) == (charge.id, 2_000)
    assert_verified()


def test_manual_capture_of_part_of_the_amount_releases_the_rest(gateway: Gateway) -> None:
    # given an authorised manual-capture payment of 50.00
    intent = gateway.create_intent(
        amount=5_000,
        currency="usd",
        capture_method="manual",
        payment_method="pm_card_visa",
        confirm=True,
    )
    assert (intent.status, intent.amount_capturable) == ("requires_capture", 5_000)

    # when 30.00 of it is captured
    captured = gateway.capture_intent(intent.id, amount_to_capture=3_000)

    # then 30.00 was received and nothing more can be captured
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded",
        3_000,
        0,
    )
    assert LedgerTransaction.objects.get(payment_intent_id=intent.id).amount == 3_000
    assert_verified()


def test_partial_refund(gateway: Gateway) -> None:
    # given a captured payment of 20.00
    intent = gateway.create_intent(
        amount=2_000, currency="usd", payment_method="pm_card_visa", confirm=True
    )

    # when 7.50 of it is refunded
    refund = gateway.create_refund(payment_intent=intent.id, amount=750, reason="duplicate")

    # then the refund succeeded and the payment shows what was refunded
    assert isinstance(refund, stripe.Refund)
    assert refund.id.startswith("re_")
    assert (refund.status, refund.amount, refund.charge) == (
        "succeeded",
        750,
        intent.latest_charge,
    )
    assert PaymentIntent.objects.get(pk=intent.id).amount_refunded == 750
    assert Refund.objects.filter(payment_intent_id=intent.id).count() == 1
    assert_verified()


def test_auto_paging_iter_walks_every_page(gateway: Gateway) -> None:
    # given five payments
    made = [gateway.create_intent(amount=1_000 + n, currency="usd").id for n in range(5)]

    # when they are listed two per page
    page = gateway.list_intents(limit=2)
    listed = [intent.id for intent in page.auto_paging_iter()]

    # then every payment came back once, newest first, over three pages
    assert page.has_more is True
    assert len(page.data) == 2
    assert listed == list(reversed(made))


def test_retrieve_with_expand_inlines_customer_and_latest_charge(gateway: Gateway) -> None:
    # given a customer's payment
    customer = gateway.create_customer(email="jenny@example.com")
    intent = gateway.create_intent(
        amount=1_500,
        currency="usd",
        customer=customer.id,
        payment_method="pm_card_visa",
        confirm=True,
    )

    # when it is retrieved with its customer and charge expanded
    found = gateway.retrieve_intent(intent.id, expand=["customer", "latest_charge"])

    # then both come back as objects of their own types, not ids
    assert isinstance(found.customer, stripe.Customer)
    assert (found.customer.id, found.customer.email) == (customer.id, "jenny@example.com")
    assert isinstance(found.latest_charge, stripe.Charge)
    assert (found.latest_charge.id, found.latest_charge.amount_captured) == (
        intent.latest_charge,
        1_500,
    )
    assert found.latest_charge["payment_method_details"]["card"]["last4"] == "4242"


def test_a_decline_raises_card_error_with_its_decline_code(gateway: Gateway) -> None:
    # when a payment is confirmed with the insufficient-funds card
    with pytest.raises(stripe.CardError) as caught:
        gateway.create_intent(
            amount=2_000,
            currency="usd",
            payment_method="pm_card_visa_chargeDeclinedInsufficientFunds",
            confirm=True,
        )

    # then the library raised Stripe's card error, carrying the decline and
    # the failed payment as Stripe's do
    error = caught.value
    assert error.http_status == 402
    assert error.code == "card_declined"
    assert error.error is not None
    assert error.error.decline_code == "insufficient_funds"
    assert error.error.payment_intent is not None
    assert error.error.payment_intent.status == "requires_payment_method"
    assert Charge.objects.get(pk=error.error.charge).status == Charge.Status.FAILED


def test_an_idempotent_retry_returns_the_same_object(gateway: Gateway) -> None:
    # given a payment made with an idempotency key
    params: dict[str, Any] = {
        "amount": 3_000,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
    }
    first = gateway.create_intent(idempotency_key="order-7-attempt-1", **params)

    # when the same request is sent again with the same key
    again = gateway.create_intent(idempotency_key="order-7-attempt-1", **params)

    # then it is the same payment, charged once
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert PaymentIntent.objects.count() == 1
    assert LedgerTransaction.objects.count() == 1


def test_a_3ds_card_requires_action_with_a_redirect(gateway: Gateway) -> None:
    intent = gateway.create_intent(
        amount=2_000,
        currency="usd",
        payment_method="pm_card_threeDSecure2Required",
        confirm=True,
        return_url="https://shop.example/return",
    )

    assert intent.status == "requires_action"
    assert intent.next_action.type == "redirect_to_url"
    redirect = intent.next_action.redirect_to_url
    assert redirect.return_url == "https://shop.example/return"
    # the challenge page is PayLab's own, served by the same server
    page = httpx.get(redirect.url)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


def test_an_unknown_id_raises_invalid_request_error_resource_missing(gateway: Gateway) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        gateway.retrieve_intent("pi_doesnotexist")

    error = caught.value
    assert error.http_status == 404
    assert error.code == "resource_missing"
    assert error.error is not None
    assert "pi_doesnotexist" in (error.error.message or "")


def test_a_bad_key_raises_authentication_error(
    paylab_url: str, merchant_a: MerchantWithKey
) -> None:
    client = stripe.StripeClient("sk_test_not_a_key", base_addresses={"api": paylab_url})

    with pytest.raises(stripe.AuthenticationError) as caught:
        client.v1.customers.list()

    assert caught.value.http_status == 401
