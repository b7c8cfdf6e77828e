"""/v1/payment_intents: the lifecycle as a Stripe integration drives it —
create, update, confirm, capture, cancel, declines, 3-D Secure — over form
and JSON bodies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from payments.models import (
    Charge,
    Event,
    IdempotencyKey,
    LedgerTransaction,
    OutboxMessage,
    PaymentIntent,
    PaymentMethod,
)
from tests.conftest import MerchantWithKey
from tests.payments.api.conftest import Stripe

RETURN_URL = "https://shop.example/checkout/done"


def _intent(stripe: Stripe, intent_id: str, **params: Any) -> dict[str, Any]:
    return stripe.ok(stripe.get(f"payment_intents/{intent_id}", params))


# --- Create -----------------------------------------------------------------------


def test_create_without_payment_method_requires_payment_method(stripe_a: Stripe) -> None:
    body = stripe_a.ok(stripe_a.post("payment_intents", {"amount": 2000, "currency": "usd"}))

    assert body["id"].startswith("pi_")
    assert body["object"] == "payment_intent"
    assert body["status"] == "requires_payment_method"
    assert body["amount"] == 2000
    assert body["currency"] == "usd"
    assert body["livemode"] is False
    assert body["client_secret"].startswith(body["id"] + "_secret_")
    assert body["latest_charge"] is None
    assert body["amount_received"] == 0


def test_create_with_payment_method_requires_confirmation(stripe_a: Stripe) -> None:
    body = stripe_a.ok(
        stripe_a.post(
            "payment_intents",
            {"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa"},
        )
    )

    assert body["status"] == "requires_confirmation"
    assert body["payment_method"].startswith("pm_")
    assert body["latest_charge"] is None


def test_create_and_confirm_with_visa_succeeds(stripe_a: Stripe) -> None:
    body = stripe_a.pay("pm_card_visa", amount=2500)

    assert body["status"] == "succeeded"
    assert body["amount_received"] == 2500
    assert body["amount_capturable"] == 0
    assert body["latest_charge"].startswith("ch_")
    charge = stripe_a.ok(stripe_a.get(f"charges/{body['latest_charge']}"))
    assert charge["status"] == "succeeded"
    assert charge["captured"] is True
    assert charge["amount_captured"] == 2500
    assert charge["payment_intent"] == body["id"]


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_create_with_nested_parameters_in_form_or_json(stripe_a: Stripe, as_json: bool) -> None:
    params = {
        "amount": 1234,
        "currency": "eur",
        "confirm": True,
        "metadata": {"order": "42", "channel": "web"},
        "payment_method_data": {
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        },
        "expand": ["payment_method"],
    }

    body = stripe_a.ok(stripe_a.post("payment_intents", params, json=as_json))

    assert body["status"] == "succeeded"
    assert body["metadata"] == {"order": "42", "channel": "web"}
    card = body["payment_method"]["card"]
    assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"]) == (
        "visa",
        "4242",
        12,
        2040,
    )


def test_form_body_is_read_as_stripe_encodes_it(stripe_a: Stripe) -> None:
    # The exact bytes the official library sends, brackets percent-encoded.
    raw = (
        "amount=1500&currency=usd&confirm=true&metadata%5Border%5D=42"
        "&payment_method_data%5Btype%5D=card"
        "&payment_method_data%5Bcard%5D%5Bnumber%5D=4242424242424242"
        "&payment_method_data%5Bcard%5D%5Bexp_month%5D=12"
        "&payment_method_data%5Bcard%5D%5Bexp_year%5D=2040"
        "&payment_method_data%5Bcard%5D%5Bcvc%5D=123"
        "&expand%5B%5D=latest_charge"
    )

    response = stripe_a.client.post(
        "/v1/payment_intents", raw, content_type="application/x-www-form-urlencoded"
    )

    body = stripe_a.ok(response)
    assert body["status"] == "succeeded"
    assert body["metadata"] == {"order": "42"}
    assert body["latest_charge"]["object"] == "charge"
    assert body["latest_charge"]["payment_method_details"]["card"]["last4"] == "4242"


# --- Update -----------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_update_before_confirmation_changes_amount_and_metadata(
    stripe_a: Stripe, as_json: bool
) -> None:
    # given a payment with two metadata keys
    created = stripe_a.ok(
        stripe_a.post(
            "payment_intents",
            {"amount": 1000, "currency": "usd", "metadata": {"order": "42", "note": "gift"}},
        )
    )

    # when the amount changes, a key is added and "" deletes another
    updated = stripe_a.ok(
        stripe_a.post(
            f"payment_intents/{created['id']}",
            {"amount": 1500, "metadata": {"note": "", "coupon": "SPRING"}, "description": "2 mugs"},
            json=as_json,
        )
    )

    # then the update is kept
    assert updated["amount"] == 1500
    assert updated["metadata"] == {"order": "42", "coupon": "SPRING"}
    assert updated["description"] == "2 mugs"
    assert _intent(stripe_a, created["id"]) == updated


def test_updated_amount_is_what_gets_charged(stripe_a: Stripe) -> None:
    # given a payment updated after creation
    created = stripe_a.ok(
        stripe_a.post(
            "payment_intents",
            {"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa"},
        )
    )
    stripe_a.ok(stripe_a.post(f"payment_intents/{created['id']}", {"amount": 1750}))

    # when it is confirmed
    confirmed = stripe_a.ok(stripe_a.post(f"payment_intents/{created['id']}/confirm"))

    # then the new amount is received
    assert confirmed["status"] == "succeeded"
    assert confirmed["amount_received"] == 1750


def test_amount_cannot_change_after_success(stripe_a: Stripe) -> None:
    paid = stripe_a.pay(amount=1000)

    response = stripe_a.post(f"payment_intents/{paid['id']}", {"amount": 500})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payment_intent_unexpected_state"
    assert _intent(stripe_a, paid["id"])["amount"] == 1000


# --- Confirm --------------------------------------------------------------------


def test_confirm_later_with_the_payment_method_given_at_creation(stripe_a: Stripe) -> None:
    created = stripe_a.ok(
        stripe_a.post(
            "payment_intents",
            {"amount": 3000, "currency": "usd", "payment_method": "pm_card_mastercard"},
        )
    )

    confirmed = stripe_a.ok(stripe_a.post(f"payment_intents/{created['id']}/confirm"))

    assert confirmed["status"] == "succeeded"
    assert confirmed["amount_received"] == 3000
    assert confirmed["payment_method"] == created["payment_method"]


def test_confirm_later_with_a_payment_method_given_at_confirmation(stripe_a: Stripe) -> None:
    created = stripe_a.ok(stripe_a.post("payment_intents", {"amount": 3000, "currency": "usd"}))

    confirmed = stripe_a.ok(
        stripe_a.post(
            f"payment_intents/{created['id']}/confirm", {"payment_method": "pm_card_amex"}
        )
    )

    assert confirmed["status"] == "succeeded"
    charge = stripe_a.ok(stripe_a.get(f"charges/{confirmed['latest_charge']}"))
    assert charge["payment_method_details"]["card"]["brand"] == "amex"


def test_confirm_without_any_payment_method_is_refused(stripe_a: Stripe) -> None:
    created = stripe_a.ok(stripe_a.post("payment_intents", {"amount": 3000, "currency": "usd"}))

    response = stripe_a.post(f"payment_intents/{created['id']}/confirm")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "payment_method"
    assert _intent(stripe_a, created["id"])["status"] == "requires_payment_method"


# --- Capture and cancel -----------------------------------------------------------


def test_manual_capture_of_the_full_amount(stripe_a: Stripe) -> None:
    # given an authorisation
    authorized = stripe_a.pay(amount=5000, manual=True)
    assert authorized["status"] == "requires_capture"
    assert authorized["amount_capturable"] == 5000
    assert authorized["amount_received"] == 0

    # when it is captured without an amount
    captured = stripe_a.ok(stripe_a.post(f"payment_intents/{authorized['id']}/capture"))

    # then all of it is received
    assert captured["status"] == "succeeded"
    assert captured["amount_received"] == 5000
    assert captured["amount_capturable"] == 0
    charge = stripe_a.ok(stripe_a.get(f"charges/{captured['latest_charge']}"))
    assert (charge["captured"], charge["amount_captured"]) == (True, 5000)


def test_partial_capture_releases_the_remainder(stripe_a: Stripe) -> None:
    authorized = stripe_a.pay(amount=5000, manual=True)

    captured = stripe_a.ok(
        stripe_a.post(f"payment_intents/{authorized['id']}/capture", {"amount_to_capture": 3200})
    )

    assert captured["status"] == "succeeded"
    assert captured["amount_received"] == 3200
    assert captured["amount_capturable"] == 0
    charge = stripe_a.ok(stripe_a.get(f"charges/{captured['latest_charge']}"))
    assert (charge["amount"], charge["amount_captured"]) == (5000, 3200)


def test_capture_of_more_than_authorised_is_refused(stripe_a: Stripe) -> None:
    authorized = stripe_a.pay(amount=5000, manual=True)

    response = stripe_a.post(
        f"payment_intents/{authorized['id']}/capture", {"amount_to_capture": 5001}
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "amount_to_capture"
    assert _intent(stripe_a, authorized["id"])["status"] == "requires_capture"


@pytest.mark.parametrize("manual", [True, False], ids=["authorised", "unconfirmed"])
def test_cancel_with_a_reason(stripe_a: Stripe, manual: bool) -> None:
    if manual:
        intent = stripe_a.pay(amount=5000, manual=True)
    else:
        intent = stripe_a.ok(stripe_a.post("payment_intents", {"amount": 5000, "currency": "usd"}))

    canceled = stripe_a.ok(
        stripe_a.post(
            f"payment_intents/{intent['id']}/cancel",
            {"cancellation_reason": "requested_by_customer"},
        )
    )

    assert canceled["status"] == "canceled"
    assert canceled["cancellation_reason"] == "requested_by_customer"
    assert isinstance(canceled["canceled_at"], int)
    assert canceled["amount_capturable"] == 0
    assert canceled["amount_received"] == 0


def test_cancel_with_an_unknown_reason_is_refused(stripe_a: Stripe) -> None:
    intent = stripe_a.pay(amount=5000, manual=True)

    response = stripe_a.post(
        f"payment_intents/{intent['id']}/cancel", {"cancellation_reason": "bored"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "cancellation_reason"
    assert _intent(stripe_a, intent["id"])["status"] == "requires_capture"


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("capture", {}),
        ("cancel", {}),
        ("confirm", {"payment_method": "pm_card_visa"}),
    ],
)
def test_illegal_transition_on_a_succeeded_payment_changes_nothing(
    stripe_a: Stripe, operation: str, params: dict[str, Any]
) -> None:
    # given a succeeded payment
    paid = stripe_a.pay(amount=1000)
    events_before = Event.objects.filter(payment_intent_id=paid["id"]).count()
    ledger_before = LedgerTransaction.objects.count()
    charges_before = Charge.objects.count()

    # when it is captured, canceled or confirmed again
    response = stripe_a.post(f"payment_intents/{paid['id']}/{operation}", params)

    # then a 400 in Stripe's shape, and nothing changed
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "payment_intent_unexpected_state"
    assert _intent(stripe_a, paid["id"]) == paid
    assert Event.objects.filter(payment_intent_id=paid["id"]).count() == events_before
    assert LedgerTransaction.objects.count() == ledger_before
    assert Charge.objects.count() == charges_before


# --- Declines --------------------------------------------------------------------

DECLINES = [
    ("pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
    ("pm_card_visa_chargeDeclinedLostCard", "card_declined", "lost_card"),
    ("pm_card_visa_chargeDeclinedStolenCard", "card_declined", "stolen_card"),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
    ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc"),
    ("pm_card_chargeDeclinedProcessingError", "processing_error", "processing_error"),
    ("pm_card_visa_chargeDeclined", "card_declined", "generic_decline"),
    ("pm_card_visa_chargeDeclinedVelocityLimitExceeded", "card_declined", "card_velocity_exceeded"),
    ("pm_card_radarBlock", "card_declined", "fraudulent"),
]


@pytest.mark.parametrize(("card", "code", "decline_code"), DECLINES)
def test_decline_is_a_402_card_error_carrying_the_payment(
    stripe_a: Stripe, card: str, code: str, decline_code: str
) -> None:
    response = stripe_a.post(
        "payment_intents",
        {"amount": 1000, "currency": "usd", "payment_method": card, "confirm": True},
    )

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["type"] == "card_error"
    assert error["code"] == code
    assert error["decline_code"] == decline_code
    assert error["message"]
    intent = error["payment_intent"]
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == decline_code
    assert intent["amount_received"] == 0
    # the attempt is committed: the failed charge and the payment as stored
    assert _intent(stripe_a, intent["id"]) == intent
    charge = stripe_a.ok(stripe_a.get(f"charges/{intent['latest_charge']}"))
    assert charge["status"] == "failed"
    assert charge["failure_code"] == code
    assert charge["outcome"]["reason"] == decline_code


def test_failed_attempt_then_retry_on_the_same_payment_succeeds(stripe_a: Stripe) -> None:
    # given a payment declined for insufficient funds
    declined = stripe_a.pay("pm_card_visa_chargeDeclinedInsufficientFunds", amount=1000)
    intent_id = declined["error"]["payment_intent"]["id"]
    failed_charge = declined["error"]["payment_intent"]["latest_charge"]

    # when the customer retries with another card
    retried = stripe_a.ok(
        stripe_a.post(f"payment_intents/{intent_id}/confirm", {"payment_method": "pm_card_visa"})
    )

    # then the same payment succeeds, with a second charge
    assert retried["id"] == intent_id
    assert retried["status"] == "succeeded"
    assert retried["last_payment_error"] is None
    assert retried["amount_received"] == 1000
    assert retried["latest_charge"] != failed_charge
    charges = stripe_a.ok(stripe_a.get("charges", {"payment_intent": intent_id}))
    assert [c["status"] for c in charges["data"]] == ["succeeded", "failed"]


def test_incorrect_number_is_a_402_naming_the_parameter(stripe_a: Stripe) -> None:
    response = stripe_a.post(
        "payment_intents",
        {
            "amount": 1000,
            "currency": "usd",
            "confirm": True,
            "payment_method_data": {
                "type": "card",
                "card": {"number": "4242424242424241", "exp_month": 12, "exp_year": 2040},
            },
        },
    )

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["type"] == "card_error"
    assert error["code"] == "incorrect_number"
    assert error["param"] == "payment_method_data[card][number]"
    assert not PaymentIntent.objects.exists()


# --- 3-D Secure ---------------------------------------------------------------------


def _requires_action(stripe: Stripe, card: str, **extra: Any) -> dict[str, Any]:
    body = stripe.ok(
        stripe.post(
            "payment_intents",
            {
                "amount": 4200,
                "currency": "eur",
                "payment_method": card,
                "confirm": True,
                "return_url": RETURN_URL,
                **extra,
            },
        )
    )
    assert body["status"] == "requires_action"
    return body


@pytest.mark.parametrize(
    "card", ["pm_card_threeDSecure2Required", "pm_card_authenticationRequired"]
)
def test_3ds_card_requires_action_with_a_hosted_challenge(stripe_a: Stripe, card: str) -> None:
    body = _requires_action(stripe_a, card)

    next_action = body["next_action"]
    assert next_action["type"] == "redirect_to_url"
    url = urlsplit(next_action["redirect_to_url"]["url"])
    assert url.scheme in ("http", "https")
    assert url.path.startswith("/hosted/3ds/")
    assert next_action["redirect_to_url"]["return_url"] == RETURN_URL
    assert body["latest_charge"] is None
    assert Client().get(url.path).status_code == 200


def test_completing_the_challenge_succeeds_and_returns_to_the_merchant(stripe_a: Stripe) -> None:
    # given a payment waiting for 3-D Secure
    body = _requires_action(stripe_a, "pm_card_threeDSecure2Required")
    challenge = urlsplit(body["next_action"]["redirect_to_url"]["url"]).path

    # when the customer completes the challenge
    response = Client().post(challenge, {"result": "complete"})

    # then they go back to the merchant, and the payment succeeded
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URL
    assert parse_qs(location.query)["payment_intent"] == [body["id"]]
    intent = _intent(stripe_a, body["id"])
    assert intent["status"] == "succeeded"
    assert intent["amount_received"] == 4200
    assert intent["next_action"] is None


def test_failing_the_challenge_leaves_requires_payment_method(stripe_a: Stripe) -> None:
    body = _requires_action(stripe_a, "pm_card_threeDSecure2Required")
    challenge = urlsplit(body["next_action"]["redirect_to_url"]["url"]).path

    response = Client().post(challenge, {"result": "fail"})

    assert response.status_code == 302
    intent = _intent(stripe_a, body["id"])
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert intent["amount_received"] == 0
    assert intent["next_action"] is None


def test_a_challenge_cannot_be_answered_twice(stripe_a: Stripe) -> None:
    body = _requires_action(stripe_a, "pm_card_threeDSecure2Required")
    challenge = urlsplit(body["next_action"]["redirect_to_url"]["url"]).path
    Client().post(challenge, {"result": "fail"})

    response = Client().post(challenge, {"result": "complete"})

    assert response.status_code == 400
    assert _intent(stripe_a, body["id"])["status"] == "requires_payment_method"


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("pm_card_threeDSecureRequiredChargeDeclined", "generic_decline"),
        ("pm_card_authenticationRequiredChargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_3ds_then_decline_card_is_declined_after_the_challenge(
    stripe_a: Stripe, card: str, decline_code: str
) -> None:
    # given a payment waiting for 3-D Secure
    body = _requires_action(stripe_a, card)
    challenge = urlsplit(body["next_action"]["redirect_to_url"]["url"]).path

    # when the challenge is completed
    Client().post(challenge, {"result": "complete"})

    # then the issuer declines
    intent = _intent(stripe_a, body["id"])
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["type"] == "card_error"
    assert intent["last_payment_error"]["decline_code"] == decline_code
    charge = stripe_a.ok(stripe_a.get(f"charges/{intent['latest_charge']}"))
    assert charge["status"] == "failed"


def test_optional_3ds_card_succeeds_without_a_challenge(stripe_a: Stripe) -> None:
    body = stripe_a.pay("pm_card_threeDSecureOptional", return_url=RETURN_URL)

    assert body["status"] == "succeeded"
    assert body["next_action"] is None


# --- Card data ---------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    """Every key and string value in a JSON-like structure."""
    if isinstance(value, dict):
        return [str(k) for k in value] + [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [str(value)] if value is not None else []


def test_full_number_and_cvc_are_stored_nowhere(stripe_a: Stripe) -> None:
    number, cvc = "4000002760003184", "7391"
    card = {"number": number, "exp_month": 11, "exp_year": 2041, "cvc": cvc}
    # given a card used on every path that takes raw card data
    stripe_a.ok(stripe_a.post("payment_methods", {"type": "card", "card": card}))
    required = stripe_a.ok(
        stripe_a.post(
            "payment_intents",
            {
                "amount": 1000,
                "currency": "usd",
                "confirm": True,
                "return_url": RETURN_URL,
                "payment_method_data": {"type": "card", "card": card},
            },
            headers={"Idempotency-Key": "card-data-1"},
        )
    )
    Client().post(
        urlsplit(required["next_action"]["redirect_to_url"]["url"]).path, {"result": "complete"}
    )
    declined = {**card, "number": "4000000000009995"}
    stripe_a.post(
        "payment_intents",
        {
            "amount": 1000,
            "currency": "usd",
            "confirm": True,
            "payment_method_data": {"type": "card", "card": declined},
        },
        json=True,
    )

    # then no stored row holds either number or the CVC
    stored: list[str] = []
    for event in Event.objects.all():
        stored += _strings(event.data) + _strings(event.delta)
    for model in (PaymentMethod, PaymentIntent, Charge):
        for row in model.objects.values():
            stored += _strings(row)
    for saved in IdempotencyKey.objects.all():
        stored += _strings(json.loads(bytes(saved.response_body or b"{}")))
    assert Event.objects.count() > 5
    assert OutboxMessage.objects.count() == Event.objects.count()
    assert PaymentMethod.objects.filter(last4="3184").count() == 2
    for text in stored:
        assert number not in text
        assert "4000000000009995" not in text
    assert cvc not in stored
    assert "cvc" not in stored


def test_idempotency_request_hash_is_keyed(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey, settings: Settings
) -> None:
    # A plain hash of parameters holding a card number could be reversed by
    # hashing the few numbers that fit the BIN and last4 the response shows.
    params = {
        "amount": 1000,
        "currency": "usd",
        "payment_method_data": {
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2040, "cvc": "123"},
        },
    }
    headers = {"Idempotency-Key": "same-request"}
    # given the same request by two merchants, under two fingerprint keys
    settings.CARD_FINGERPRINT_KEY = "first-key-" + "x" * 40
    Stripe(merchant_a.api()).ok(
        Stripe(merchant_a.api()).post("payment_intents", params, headers=headers)
    )
    settings.CARD_FINGERPRINT_KEY = "second-key-" + "y" * 40
    Stripe(merchant_b.api()).ok(
        Stripe(merchant_b.api()).post("payment_intents", params, headers=headers)
    )

    # then the saved request hashes differ: they depend on the secret key
    first, second = IdempotencyKey.objects.order_by("id")
    assert first.request_hash != second.request_hash
