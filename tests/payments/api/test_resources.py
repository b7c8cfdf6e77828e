"""/v1/refunds, customers, payment_methods, charges, disputes, events, balance
and balance_transactions."""

from __future__ import annotations

from typing import Any

import pytest

from payments import processing
from payments.models import Refund
from tests.payments.api.conftest import Stripe

CARD = {"number": "5555555555554444", "exp_month": 8, "exp_year": 2040, "cvc": "321"}


def _usd_balance(stripe: Stripe) -> int:
    balance = stripe.ok(stripe.get("balance"))
    assert balance["object"] == "balance"
    return sum(row["amount"] for row in balance["available"] if row["currency"] == "usd")


# --- Refunds -------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["payment_intent", "charge"])
def test_full_refund(stripe_a: Stripe, by: str) -> None:
    # given a payment of 1000
    paid = stripe_a.pay(amount=1000)
    target = paid["id"] if by == "payment_intent" else paid["latest_charge"]

    # when it is refunded without an amount
    refund = stripe_a.ok(stripe_a.post("refunds", {by: target, "reason": "duplicate"}))

    # then all of it is refunded
    assert refund["id"].startswith("re_")
    assert refund["object"] == "refund"
    assert (refund["amount"], refund["status"], refund["reason"]) == (
        1000,
        "succeeded",
        "duplicate",
    )
    assert refund["payment_intent"] == paid["id"]
    assert refund["charge"] == paid["latest_charge"]
    charge = stripe_a.ok(stripe_a.get(f"charges/{paid['latest_charge']}"))
    assert (charge["amount_refunded"], charge["refunded"]) == (1000, True)
    assert stripe_a.ok(stripe_a.get(f"refunds/{refund['id']}")) == refund


def test_several_partial_refunds_up_to_the_captured_amount(stripe_a: Stripe) -> None:
    # given a payment of 1000, manually captured for 800
    authorized = stripe_a.pay(amount=1000, manual=True)
    stripe_a.ok(
        stripe_a.post(f"payment_intents/{authorized['id']}/capture", {"amount_to_capture": 800})
    )

    # when it is refunded in three parts adding up to 800
    amounts = [300, 250, 250]
    for amount in amounts:
        stripe_a.ok(
            stripe_a.post("refunds", {"payment_intent": authorized["id"], "amount": amount})
        )

    # then all three are listed, the charge is fully refunded, and nothing is left to refund
    listed = stripe_a.ok(stripe_a.get("refunds", {"payment_intent": authorized["id"]}))
    assert [r["amount"] for r in listed["data"]] == list(reversed(amounts))
    charge = stripe_a.ok(stripe_a.get(f"charges/{authorized['latest_charge']}"))
    assert (charge["amount_refunded"], charge["refunded"]) == (800, True)
    response = stripe_a.post("refunds", {"payment_intent": authorized["id"], "amount": 1})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "charge_already_refunded"


def test_refund_of_more_than_is_left_is_refused(stripe_a: Stripe) -> None:
    # given a payment of 1000 with 600 refunded
    paid = stripe_a.pay(amount=1000)
    stripe_a.ok(stripe_a.post("refunds", {"payment_intent": paid["id"], "amount": 600}))

    # when 401 more is asked
    response = stripe_a.post("refunds", {"payment_intent": paid["id"], "amount": 401})

    # then it is refused, and nothing more is refunded
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("amount_too_large", "amount")
    assert Refund.objects.count() == 1
    charge = stripe_a.ok(stripe_a.get(f"charges/{paid['latest_charge']}"))
    assert charge["amount_refunded"] == 600


def test_refund_of_an_uncaptured_payment_is_refused(stripe_a: Stripe) -> None:
    authorized = stripe_a.pay(amount=1000, manual=True)

    response = stripe_a.post("refunds", {"payment_intent": authorized["id"]})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert not Refund.objects.exists()
    intent = stripe_a.ok(stripe_a.get(f"payment_intents/{authorized['id']}"))
    assert (intent["status"], intent["amount_capturable"]) == ("requires_capture", 1000)


def test_refund_needs_a_payment_intent_or_a_charge(stripe_a: Stripe) -> None:
    response = stripe_a.post("refunds", {"amount": 100})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_missing"


# --- Customers -----------------------------------------------------------------------


def test_customer_create_retrieve_update_list_delete(stripe_a: Stripe) -> None:
    # create
    created = stripe_a.ok(
        stripe_a.post(
            "customers",
            {"email": "ada@example.com", "name": "Ada", "metadata": {"tier": "gold"}},
        )
    )
    assert created["id"].startswith("cus_")
    assert created["object"] == "customer"
    assert (created["email"], created["name"], created["metadata"]) == (
        "ada@example.com",
        "Ada",
        {"tier": "gold"},
    )
    # retrieve
    assert stripe_a.ok(stripe_a.get(f"customers/{created['id']}")) == created
    # update
    updated = stripe_a.ok(
        stripe_a.post(f"customers/{created['id']}", {"name": "Ada L.", "metadata": {"tier": ""}})
    )
    assert (updated["name"], updated["email"], updated["metadata"]) == (
        "Ada L.",
        "ada@example.com",
        {},
    )
    # list
    listed = stripe_a.ok(stripe_a.get("customers", {"email": "ada@example.com"}))
    assert [c["id"] for c in listed["data"]] == [created["id"]]
    # delete
    deleted = stripe_a.ok(stripe_a.delete(f"customers/{created['id']}"))
    assert deleted == {"id": created["id"], "object": "customer", "deleted": True}
    # retrieve after delete: Stripe answers the deleted stub
    assert stripe_a.ok(stripe_a.get(f"customers/{created['id']}")) == deleted
    assert stripe_a.ok(stripe_a.get("customers"))["data"] == []
    assert stripe_a.post(f"customers/{created['id']}", {"name": "x"}).status_code == 404
    assert stripe_a.delete(f"customers/{created['id']}").status_code == 404


def test_payment_with_a_deleted_customer_is_refused(stripe_a: Stripe) -> None:
    customer = stripe_a.ok(stripe_a.post("customers", {"email": "gone@example.com"}))
    stripe_a.ok(stripe_a.delete(f"customers/{customer['id']}"))

    response = stripe_a.post(
        "payment_intents", {"amount": 1000, "currency": "usd", "customer": customer["id"]}
    )

    assert response.status_code == 404
    assert response.json()["error"]["param"] == "customer"


# --- Payment methods -------------------------------------------------------------------


def test_payment_method_create_retrieve_attach_list_detach(stripe_a: Stripe) -> None:
    customer = stripe_a.ok(stripe_a.post("customers", {"email": "pm@example.com"}))

    # create
    pm = stripe_a.ok(
        stripe_a.post(
            "payment_methods",
            {"type": "card", "card": CARD, "billing_details": {"name": "Ada"}},
        )
    )
    assert pm["id"].startswith("pm_")
    assert pm["object"] == "payment_method"
    assert pm["type"] == "card"
    assert {k: pm["card"][k] for k in ("brand", "last4", "exp_month", "exp_year")} == {
        "brand": "mastercard",
        "last4": "4444",
        "exp_month": 8,
        "exp_year": 2040,
    }
    assert pm["billing_details"]["name"] == "Ada"
    assert pm["customer"] is None
    # retrieve
    assert stripe_a.ok(stripe_a.get(f"payment_methods/{pm['id']}")) == pm

    # attach
    attached = stripe_a.ok(
        stripe_a.post(f"payment_methods/{pm['id']}/attach", {"customer": customer["id"]})
    )
    assert attached["customer"] == customer["id"]

    # list, both ways
    by_query = stripe_a.ok(stripe_a.get("payment_methods", {"customer": customer["id"]}))
    by_customer = stripe_a.ok(stripe_a.get(f"customers/{customer['id']}/payment_methods"))
    assert [p["id"] for p in by_query["data"]] == [pm["id"]]
    assert by_customer["data"] == by_query["data"]

    # detach
    detached = stripe_a.ok(stripe_a.post(f"payment_methods/{pm['id']}/detach"))
    assert detached["customer"] is None
    assert stripe_a.ok(stripe_a.get("payment_methods", {"customer": customer["id"]}))["data"] == []
    again = stripe_a.post(f"payment_methods/{pm['id']}/detach")
    assert again.status_code == 400


def test_listing_payment_methods_needs_a_customer(stripe_a: Stripe) -> None:
    response = stripe_a.get("payment_methods")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("parameter_missing", "customer")


def test_attached_payment_method_pays_for_its_customer(stripe_a: Stripe) -> None:
    # given a saved card of a customer
    customer = stripe_a.ok(stripe_a.post("customers", {"email": "saved@example.com"}))
    pm = stripe_a.ok(stripe_a.post("payment_methods", {"type": "card", "card": CARD}))
    stripe_a.ok(stripe_a.post(f"payment_methods/{pm['id']}/attach", {"customer": customer["id"]}))

    # when a payment is made with it
    paid = stripe_a.pay(pm["id"], customer=customer["id"])

    # then the charge points at both
    assert paid["status"] == "succeeded"
    charge = stripe_a.ok(stripe_a.get(f"charges/{paid['latest_charge']}"))
    assert (charge["payment_method"], charge["customer"]) == (pm["id"], customer["id"])


# --- Charges and disputes ------------------------------------------------------------------


def test_charge_retrieve(stripe_a: Stripe) -> None:
    paid = stripe_a.pay("pm_card_visa_debit", amount=1999)

    charge = stripe_a.ok(stripe_a.get(f"charges/{paid['latest_charge']}"))

    assert charge["id"] == paid["latest_charge"]
    assert charge["object"] == "charge"
    assert (charge["amount"], charge["currency"], charge["paid"]) == (1999, "usd", True)
    assert charge["payment_method_details"]["card"]["funding"] == "debit"
    assert charge["balance_transaction"].startswith("txn_")


def test_dispute_card_opens_a_dispute_and_withdraws_amount_and_fee(stripe_a: Stripe) -> None:
    # given a balance from an earlier payment
    stripe_a.pay(amount=5000)
    before = _usd_balance(stripe_a)

    # when a dispute card pays 2000
    paid = stripe_a.pay("pm_card_createDispute", amount=2000)

    # then a dispute needing a response is listed, and the balance lost the
    # payment's amount and the dispute fee on top of gaining the payment's net
    assert paid["status"] == "succeeded"
    disputes = stripe_a.ok(stripe_a.get("disputes"))
    assert len(disputes["data"]) == 1
    dispute = disputes["data"][0]
    assert dispute["id"].startswith("dp_")
    assert (dispute["status"], dispute["amount"], dispute["reason"]) == (
        "needs_response",
        2000,
        "fraudulent",
    )
    assert (dispute["payment_intent"], dispute["charge"]) == (paid["id"], paid["latest_charge"])
    assert stripe_a.ok(stripe_a.get(f"disputes/{dispute['id']}")) == dispute
    charge = stripe_a.ok(
        stripe_a.get(f"charges/{paid['latest_charge']}", {"expand": ["balance_transaction"]})
    )
    assert charge["disputed"] is True
    charge_net = charge["balance_transaction"]["net"]
    fee = processing.dispute_fee(currency="usd")
    assert fee > 0
    assert _usd_balance(stripe_a) == before + charge_net - 2000 - fee


# --- Events -----------------------------------------------------------------------------


def test_events_list_filters_by_type_and_retrieves_one(stripe_a: Stripe) -> None:
    # given two succeeded payments and a declined one
    first = stripe_a.pay(amount=1000)
    second = stripe_a.pay(amount=2000)
    stripe_a.pay("pm_card_visa_chargeDeclined", amount=3000)

    # when the succeeded events are listed
    listed = stripe_a.ok(stripe_a.get("events", {"type": "payment_intent.succeeded"}))

    # then exactly those two, newest first, each retrievable
    assert [e["type"] for e in listed["data"]] == ["payment_intent.succeeded"] * 2
    assert [e["data"]["object"]["id"] for e in listed["data"]] == [second["id"], first["id"]]
    event = listed["data"][0]
    assert event["id"].startswith("evt_")
    assert event["object"] == "event"
    assert event["data"]["object"]["status"] == "succeeded"
    assert stripe_a.ok(stripe_a.get(f"events/{event['id']}")) == event


def test_events_list_all_by_default_and_by_wildcard(stripe_a: Stripe) -> None:
    stripe_a.pay(amount=1000)
    stripe_a.ok(stripe_a.post("customers", {"email": "e@example.com"}))

    everything = stripe_a.ok(stripe_a.get("events", {"limit": 100}))
    charges = stripe_a.ok(stripe_a.get("events", {"type": "charge.*"}))

    types = {e["type"] for e in everything["data"]}
    assert {"payment_intent.created", "payment_intent.succeeded", "customer.created"} <= types
    assert {e["type"] for e in charges["data"]} == {"charge.succeeded"}


# --- Balance -----------------------------------------------------------------------------


def _all_balance_transactions(stripe: Stripe, **params: Any) -> list[dict[str, Any]]:
    listed = stripe.ok(stripe.get("balance_transactions", {"limit": 100, **params}))
    assert listed["has_more"] is False
    data: list[dict[str, Any]] = listed["data"]
    return data


def test_balance_is_the_sum_of_balance_transaction_nets(stripe_a: Stripe) -> None:
    # given payments, a partial capture, a refund and a dispute, in two currencies
    stripe_a.pay(amount=10_000)
    refunded = stripe_a.pay(amount=4000)
    stripe_a.ok(stripe_a.post("refunds", {"payment_intent": refunded["id"], "amount": 1500}))
    authorized = stripe_a.pay(amount=3000, manual=True)
    stripe_a.ok(
        stripe_a.post(f"payment_intents/{authorized['id']}/capture", {"amount_to_capture": 2500})
    )
    stripe_a.pay("pm_card_createDispute", amount=2000)
    stripe_a.pay(amount=500, currency="jpy")

    # when the balance and its transactions are read
    balance = stripe_a.ok(stripe_a.get("balance"))
    transactions = _all_balance_transactions(stripe_a)

    # then each currency's balance is the sum of its nets
    by_currency = {row["currency"]: row["amount"] for row in balance["available"]}
    assert set(by_currency) == {"usd", "jpy"}
    for currency, amount in by_currency.items():
        assert amount == sum(t["net"] for t in transactions if t["currency"] == currency)
    for txn in transactions:
        assert txn["id"].startswith("txn_")
        assert txn["object"] == "balance_transaction"
        assert txn["net"] == txn["amount"] - txn["fee"]
    assert {t["type"] for t in transactions} == {"charge", "refund", "dispute"}
    assert [t["type"] for t in _all_balance_transactions(stripe_a, type="refund")] == ["refund"]
    one = transactions[0]
    assert stripe_a.ok(stripe_a.get(f"balance_transactions/{one['id']}")) == one
