"""UPI and wallets through the merchant API: `payment_method_data` of every
type, `payment_method_types` deciding what a payment may be confirmed with,
and a clear 400 naming the field for every malformed method."""

from __future__ import annotations

from typing import Any

import pytest

from payments.models import PaymentIntent
from tests.payments.api.conftest import Stripe


def _error(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error: dict[str, Any] = response.json()["error"]
    return error


def test_a_upi_payment_made_with_payment_method_data_goes_processing(stripe_a: Stripe) -> None:
    paid = stripe_a.ok(
        stripe_a.post(
            "payment_intents",
            {
                "amount": 50_000,
                "currency": "inr",
                "payment_method_data": {"type": "upi", "upi": {"vpa": "Success@PayLab"}},
                "confirm": True,
                "expand": ["payment_method"],
            },
        )
    )

    assert paid["status"] == "processing"
    assert paid["payment_method_types"] == ["upi"]
    assert paid["payment_method"]["type"] == "upi"
    # VPAs are case-insensitive: stored as the test VPA it is.
    assert paid["payment_method"]["upi"] == {"vpa": "success@paylab"}
    assert PaymentIntent.objects.get(pk=paid["id"]).processor == "monsoon"
    charge = stripe_a.ok(stripe_a.get(f"charges/{paid['latest_charge']}"))
    assert charge["status"] == "pending"
    assert charge["payment_method_details"] == {"type": "upi", "upi": {"vpa": "success@paylab"}}
    assert charge["outcome"]["seller_message"].startswith("Pending")


@pytest.mark.parametrize("wallet", [{}, {"type": "apple_pay"}])
def test_a_wallet_payment_made_with_payment_method_data_succeeds(
    stripe_a: Stripe, wallet: dict[str, str]
) -> None:
    paid = stripe_a.ok(
        stripe_a.post(
            "payment_intents",
            {
                "amount": 1500,
                "currency": "usd",
                "payment_method_data": {"type": "wallet", "wallet": wallet},
                "confirm": True,
                "expand": ["payment_method"],
            },
            json=True,
        )
    )

    assert paid["status"] == "succeeded"
    assert paid["payment_method_types"] == ["wallet"]
    assert paid["payment_method"]["wallet"] == {"type": wallet.get("type", "paylab_wallet")}


@pytest.mark.parametrize(
    ("method", "param"),
    [
        ({"type": "upi"}, "payment_method_data[upi][vpa]"),
        ({"type": "upi", "upi": {"vpa": "not a vpa"}}, "payment_method_data[upi][vpa]"),
        (
            {"type": "upi", "upi": {"vpa": "x@paylab", "pin": "1234"}},
            "payment_method_data[upi][pin]",
        ),
        ({"type": "wallet", "wallet": {"type": "paypal"}}, "payment_method_data[wallet][type]"),
        ({"type": "card"}, "payment_method_data[card]"),
        ({"type": "sepa_debit"}, "payment_method_data[type]"),
    ],
)
def test_a_malformed_payment_method_data_is_a_400_naming_the_field(
    stripe_a: Stripe, method: dict[str, Any], param: str
) -> None:
    response = stripe_a.post(
        "payment_intents",
        {"amount": 1000, "currency": "inr", "payment_method_data": method, "confirm": True},
    )

    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert not PaymentIntent.objects.exists()


def test_a_method_the_payment_does_not_allow_is_refused_at_creation(stripe_a: Stripe) -> None:
    response = stripe_a.post(
        "payment_intents",
        {
            "amount": 1000,
            "currency": "inr",
            "payment_method_types": ["card"],
            "payment_method_data": {"type": "upi", "upi": {"vpa": "success@paylab"}},
        },
    )

    error = _error(response)
    assert (error["code"], error["param"]) == (
        "payment_intent_incompatible_payment_method",
        "payment_method_data[type]",
    )
    assert "(upi) is not allowed" in error["message"]


def test_payment_method_types_decide_what_a_confirmation_may_use(stripe_a: Stripe) -> None:
    # Given a payment that allows cards and UPI
    intent = stripe_a.ok(
        stripe_a.post(
            "payment_intents",
            {"amount": 2000, "currency": "inr", "payment_method_types": ["card", "upi", "card"]},
        )
    )
    assert intent["payment_method_types"] == ["card", "upi"]

    # When it is confirmed with a wallet, it is refused and stays as it was
    wallet = stripe_a.ok(stripe_a.post("payment_methods", {"type": "wallet"}))
    refused = stripe_a.post(
        f"payment_intents/{intent['id']}/confirm", {"payment_method": wallet["id"]}
    )
    error = _error(refused)
    assert (error["code"], error["param"]) == (
        "payment_intent_incompatible_payment_method",
        "payment_method",
    )
    assert stripe_a.ok(stripe_a.get(f"payment_intents/{intent['id']}"))["status"] == (
        "requires_payment_method"
    )

    # and confirmed with UPI, it goes processing
    confirmed = stripe_a.ok(
        stripe_a.post(
            f"payment_intents/{intent['id']}/confirm",
            {"payment_method_data": {"type": "upi", "upi": {"vpa": "slow@paylab"}}},
        )
    )
    assert confirmed["status"] == "processing"


def test_updating_payment_method_types_is_checked_against_the_attached_method(
    stripe_a: Stripe,
) -> None:
    # Given a payment with a card attached (types default to card)
    intent = stripe_a.ok(
        stripe_a.post(
            "payment_intents",
            {"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa"},
        )
    )
    assert intent["payment_method_types"] == ["card"]

    # When the types are narrowed to wallets only, the card no longer fits
    error = _error(
        stripe_a.post(f"payment_intents/{intent['id']}", {"payment_method_types": ["wallet"]})
    )
    assert (error["code"], error["param"]) == (
        "payment_intent_incompatible_payment_method",
        "payment_method_types",
    )

    # but widened to card and wallet, a wallet may then confirm it
    widened = stripe_a.ok(
        stripe_a.post(
            f"payment_intents/{intent['id']}", {"payment_method_types": ["card", "wallet"]}
        )
    )
    assert widened["payment_method_types"] == ["card", "wallet"]
    wallet = stripe_a.ok(stripe_a.post("payment_methods", {"type": "wallet"}))
    paid = stripe_a.ok(
        stripe_a.post(f"payment_intents/{intent['id']}/confirm", {"payment_method": wallet["id"]})
    )
    assert paid["status"] == "succeeded"


def test_an_empty_payment_method_types_is_refused(stripe_a: Stripe) -> None:
    response = stripe_a.post(
        "payment_intents",
        {"amount": 1000, "currency": "usd", "payment_method_types": []},
        json=True,
    )

    assert _error(response)["param"] == "payment_method_types"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"type": "upi"}, "upi[vpa]"),
        ({"type": "upi", "upi": {"vpa": "@paylab"}}, "upi[vpa]"),
        ({"type": "wallet", "wallet": {"type": "cash"}}, "wallet[type]"),
        ({"type": "card"}, "card"),
    ],
)
def test_creating_a_malformed_payment_method_is_a_400_naming_the_field(
    stripe_a: Stripe, params: dict[str, Any], param: str
) -> None:
    error = _error(stripe_a.post("payment_methods", params))

    assert error["param"] == param


def test_upi_and_wallet_payment_methods_are_created_and_retrieved(stripe_a: Stripe) -> None:
    upi = stripe_a.ok(
        stripe_a.post("payment_methods", {"type": "upi", "upi": {"vpa": "failure@paylab"}})
    )
    wallet = stripe_a.ok(stripe_a.post("payment_methods", {"type": "wallet"}))

    assert (upi["type"], upi["upi"]) == ("upi", {"vpa": "failure@paylab"})
    assert (wallet["type"], wallet["wallet"]) == ("wallet", {"type": "paylab_wallet"})
    assert stripe_a.ok(stripe_a.get(f"payment_methods/{upi['id']}")) == upi
