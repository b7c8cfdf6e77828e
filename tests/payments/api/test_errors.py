"""Request errors in Stripe's envelope: unknown and missing parameters, bad
amounts, currencies and metadata, unknown URLs, wrong methods — and never a
500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.http import HttpResponse
from rest_framework.test import APIClient

from payments.models import Event, IdempotencyKey, PaymentIntent
from tests.payments.api.conftest import Stripe

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}


def _error(response: HttpResponse, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] in ("invalid_request_error", "card_error", "idempotency_error")
    assert error["message"]
    return error


# --- Parameters ----------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
@pytest.mark.parametrize(
    ("path", "params", "unknown"),
    [
        ("payment_intents", {"amount": 1000, "currency": "usd", "colour": "red"}, "colour"),
        (
            "payment_intents",
            {
                "amount": 1000,
                "currency": "usd",
                "payment_method_data": {"type": "card", "card": {**CARD, "foo": "1"}},
            },
            "payment_method_data[card][foo]",
        ),
        (
            "payment_intents",
            {
                "amount": 1000,
                "currency": "usd",
                "payment_method_data": {"type": "card", "card": CARD, "bar": "x"},
            },
            "payment_method_data[bar]",
        ),
        ("customers", {"email": "a@example.com", "nickname": "A"}, "nickname"),
        ("refunds", {"payment_intent": "pi_x", "speed": "fast"}, "speed"),
    ],
    ids=["top-level", "card", "payment-method-data", "customer", "refund"],
)
def test_unknown_parameter_is_refused_by_name(
    stripe_a: Stripe, path: str, params: dict[str, Any], unknown: str, as_json: bool
) -> None:
    error = _error(stripe_a.post(path, params, json=as_json))

    assert error["code"] == "parameter_unknown"
    assert error["param"] == unknown
    assert unknown in error["message"]
    assert not PaymentIntent.objects.exists()


def test_unknown_query_parameter_on_a_list_is_refused(stripe_a: Stripe) -> None:
    error = _error(stripe_a.get("payment_intents", {"status": "succeeded"}))

    assert (error["code"], error["param"]) == ("parameter_unknown", "status")


@pytest.mark.parametrize(
    ("path", "params", "missing"),
    [
        ("payment_intents", {"currency": "usd"}, "amount"),
        ("payment_intents", {"amount": 1000}, "currency"),
        (
            "payment_intents",
            {"amount": 1000, "currency": "usd", "payment_method_data": {"type": "card"}},
            "payment_method_data[card]",
        ),
        (
            "payment_intents",
            {
                "amount": 1000,
                "currency": "usd",
                "payment_method_data": {"type": "card", "card": {"exp_month": 1, "exp_year": 2040}},
            },
            "payment_method_data[card][number]",
        ),
        ("payment_methods", {"card": CARD}, "type"),
    ],
)
def test_missing_required_parameter_is_refused_by_name(
    stripe_a: Stripe, path: str, params: dict[str, Any], missing: str
) -> None:
    error = _error(stripe_a.post(path, params))

    assert (error["code"], error["param"]) == ("parameter_missing", missing)


@pytest.mark.parametrize(
    ("amount", "as_json"),
    [
        ("10.5", False),
        ("10.00", False),
        ("1e3", False),
        ("ten", False),
        ("", False),
        (10.5, True),
        (10.0, True),
        ("10.5", True),
        (True, True),
        (0, True),
        (-5, True),
        (10**12, True),
    ],
)
def test_amount_must_be_a_positive_whole_number(
    stripe_a: Stripe, amount: Any, as_json: bool
) -> None:
    error = _error(
        stripe_a.post("payment_intents", {"amount": amount, "currency": "usd"}, json=as_json)
    )

    assert error["param"] == "amount"
    assert not PaymentIntent.objects.exists()


def test_amount_to_capture_and_refund_amount_must_be_whole_numbers(stripe_a: Stripe) -> None:
    authorized = stripe_a.pay(amount=1000, manual=True)

    capture = _error(
        stripe_a.post(f"payment_intents/{authorized['id']}/capture", {"amount_to_capture": "5.5"})
    )
    refund = _error(
        stripe_a.post("refunds", {"payment_intent": authorized["id"], "amount": 1.5}, json=True)
    )

    assert capture["param"] == "amount_to_capture"
    assert refund["param"] == "amount"


@pytest.mark.parametrize("currency", ["xyz", "us", "dollars", "12$", ""])
def test_bad_currency_is_refused(stripe_a: Stripe, currency: str) -> None:
    error = _error(stripe_a.post("payment_intents", {"amount": 1000, "currency": currency}))

    assert error["param"] == "currency"
    assert not PaymentIntent.objects.exists()


def test_currency_is_case_insensitive_and_stored_lower_case(stripe_a: Stripe) -> None:
    body = stripe_a.ok(stripe_a.post("payment_intents", {"amount": 1000, "currency": "EUR"}))

    assert body["currency"] == "eur"


def test_metadata_of_more_than_50_keys_is_refused(stripe_a: Stripe) -> None:
    many = {f"k{i}": str(i) for i in range(51)}

    error = _error(
        stripe_a.post("payment_intents", {"amount": 1000, "currency": "usd", "metadata": many})
    )

    assert error["param"] == "metadata"
    assert not PaymentIntent.objects.exists()


def test_metadata_of_exactly_50_keys_is_accepted(stripe_a: Stripe) -> None:
    fifty = {f"k{i}": str(i) for i in range(50)}

    body = stripe_a.ok(stripe_a.post("customers", {"metadata": fifty}))

    assert body["metadata"] == fifty


def test_update_that_would_exceed_50_metadata_keys_is_refused(stripe_a: Stripe) -> None:
    # given a customer with 30 keys
    customer = stripe_a.ok(
        stripe_a.post("customers", {"metadata": {f"a{i}": "x" for i in range(30)}})
    )

    # when 21 more are added
    response = stripe_a.post(
        f"customers/{customer['id']}", {"metadata": {f"b{i}": "y" for i in range(21)}}
    )

    # then it is refused and the customer keeps its 30
    assert _error(response)["param"] == "metadata"
    stored = stripe_a.ok(stripe_a.get(f"customers/{customer['id']}"))
    assert len(stored["metadata"]) == 30


@pytest.mark.parametrize(
    "metadata",
    [{"k" * 41: "v"}, {"key": "v" * 501}, {"key": {"nested": "x"}}],
    ids=["long-key", "long-value", "nested"],
)
def test_malformed_metadata_is_refused(stripe_a: Stripe, metadata: dict[str, Any]) -> None:
    response = stripe_a.post("customers", {"metadata": metadata}, json=True)

    assert _error(response)["param"].startswith("metadata")


# --- URLs and methods -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/v1/nothing_here",
        "/v1/payment_intents/pi_123/refund",
        "/v1/customers/cus_123/sources",
        "/v1/",
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_url_under_v1_is_a_json_404(stripe_a: Stripe, url: str, method: str) -> None:
    response = getattr(stripe_a.client, method)(url)

    error = _error(response, 404)
    assert error["type"] == "invalid_request_error"
    assert url in error["message"]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("delete", "/v1/payment_intents"),
        ("put", "/v1/customers"),
        ("patch", "/v1/payment_intents/pi_123"),
        ("delete", "/v1/payment_intents/pi_123"),
        ("get", "/v1/payment_intents/pi_123/confirm"),
        ("get", "/v1/payment_intents/pi_123/capture"),
        ("post", "/v1/charges/ch_123"),
        ("post", "/v1/events"),
        ("post", "/v1/balance"),
        ("delete", "/v1/payment_methods/pm_123"),
    ],
)
def test_wrong_method_is_a_json_405(stripe_a: Stripe, method: str, url: str) -> None:
    response = getattr(stripe_a.client, method)(url)

    error = _error(response, 405)
    assert error["type"] == "invalid_request_error"
    assert "Allow" in response


def test_missing_key_is_a_json_401(db: None) -> None:
    response = APIClient().get("/v1/payment_intents")

    error = _error(response, 401)
    assert error["type"] == "invalid_request_error"


# --- Never a 500 ------------------------------------------------------------------------------

WEIRD_BODIES: list[tuple[str, str, str]] = [
    ("payment_intents", "application/json", "[1, 2, 3]"),
    ("payment_intents", "application/json", '"amount"'),
    ("payment_intents", "application/json", "null"),
    ("payment_intents", "application/json", "{not json"),
    ("payment_intents", "application/json", ""),
    ("payment_intents", "application/json", '{"amount": 1000, "currency": ["usd"]}'),
    ("payment_intents", "application/json", '{"amount": {"v": 1}, "currency": "usd"}'),
    ("payment_intents", "application/json", '{"amount": 1000, "currency": "usd", "metadata": [1]}'),
    ("payment_intents", "application/json", '{"amount": 1000, "currency": "usd", "metadata": "x"}'),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "expand": {"a": 1}}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "confirm": "maybe"}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "capture_method": "later"}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "payment_method_data": "card"}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "payment_method_data": {"type": "card", "card": "4242"}}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "payment_method_data": {"type": "card", '
        '"card": {"number": 4242424242424242, "exp_month": "x", "exp_year": 2040}}}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "confirm": true, "payment_method": "pm_nope"}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", '
        '"payment_method_data": {"type": "card", "card": {"number": "4242424242424242", '
        '"exp_month": 1, "exp_year": 2040}}}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "payment_method_data": {"type": "card", '
        '"card": {"number": "4242424242424242", "exp_month": 13, "exp_year": 2040}}}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "payment_method_data": {"type": "card", '
        '"card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2001}}}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "payment_method_data": {"type": "card", '
        '"card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2040, "cvc": "abc"}}}',
    ),
    ("payment_intents", "application/x-www-form-urlencoded", "amount[]=1&currency=usd"),
    ("payment_intents", "application/x-www-form-urlencoded", "amount=1000&currency[x]=usd"),
    (
        "payment_intents",
        "application/x-www-form-urlencoded",
        "amount=1000&currency=usd&metadata[]=a",
    ),
    (
        "payment_intents",
        "application/x-www-form-urlencoded",
        "amount=1000&currency=usd&metadata[a][b]=c",
    ),
    (
        "payment_intents",
        "application/x-www-form-urlencoded",
        "amount=1000&currency=usd&customer=cus_nope",
    ),
    ("payment_intents", "application/x-www-form-urlencoded", "%ZZ=1&a[=2&]]=3"),
    (
        "payment_intents",
        "application/x-www-form-urlencoded",
        "amount=99999999999999999999999&currency=usd",
    ),
    ("payment_intents", "text/plain", "amount=1000"),
    ("payment_intents/pi_nope", "application/x-www-form-urlencoded", "amount=1"),
    ("payment_intents/pi_nope/confirm", "application/x-www-form-urlencoded", ""),
    ("payment_intents/pi_nope/capture", "application/x-www-form-urlencoded", "amount_to_capture=1"),
    ("refunds", "application/x-www-form-urlencoded", "charge=ch_nope"),
    ("refunds", "application/json", '{"payment_intent": 5}'),
    ("customers", "application/json", '{"email": "not-an-email"}'),
    ("customers", "application/json", '{"email": ["a@example.com"]}'),
    ("payment_methods", "application/json", '{"type": "card", "card": "x"}'),
    ("payment_methods", "application/json", '{"type": "card", "card": {"token": 5}}'),
    ("payment_methods", "application/json", '{"type": "card", "card": [1]}'),
    ("payment_methods", "application/json", '{"type": "upi", "upi": "x"}'),
    (
        "payment_methods",
        "application/json",
        '{"type": "card", "billing_details": "x", "card": {"number": "4242424242424242", '
        '"exp_month": 1, "exp_year": 2040}}',
    ),
    (
        "payment_intents",
        "application/json",
        '{"amount": 1000, "currency": "usd", "payment_method_data": {"type": "card", '
        '"billing_details": ["x"], "card": {"number": "4242424242424242", "exp_month": 1, '
        '"exp_year": 2040}}}',
    ),
    ("payment_methods", "application/json", '{"type": "wallet", "wallet": 5}'),
    ("payment_methods/pm_nope/attach", "application/json", '{"customer": "cus_nope"}'),
    ("payment_methods/pm_nope/detach", "application/json", "{}"),
    ("customers/cus_nope", "application/json", '{"name": "x"}'),
]


@pytest.mark.parametrize(("path", "content_type", "body"), WEIRD_BODIES)
def test_malformed_requests_are_4xx_never_500(
    stripe_a: Stripe, path: str, content_type: str, body: str
) -> None:
    response = stripe_a.client.post(f"/v1/{path}", body, content_type=content_type)

    assert 400 <= response.status_code < 500, response.content
    assert "error" in response.json()
    assert not PaymentIntent.objects.exists()
    assert not Event.objects.filter(type__startswith="payment_intent").exists()


WEIRD_QUERIES = [
    "payment_intents?limit=abc",
    "payment_intents?starting_after[x]=1",
    "payment_intents?created=abc",
    "payment_intents?created[gte]=99999999999999999999",
    "payment_intents?created[gte][x]=1",
    "payment_intents?expand=data.customer",
    "payment_intents?expand[]=data.nothing",
    "payment_intents?customer[]=x",
    "payment_intents/pi_nope",
    "payment_intents/pi_nope?expand[]=customer",
    "events?types[]=charge.*&type=x",
    "events?types=x",
    "balance_transactions?currency=EURO",
    "payment_methods?customer=cus_nope",
    "customers/cus_nope/payment_methods",
    "charges?payment_intent[]=x",
    "disputes/dp_nope",
]


@pytest.mark.parametrize("query", WEIRD_QUERIES)
def test_malformed_queries_never_500(stripe_a: Stripe, query: str) -> None:
    stripe_a.pay(amount=1000)

    response = stripe_a.client.get(f"/v1/{query}")

    assert response.status_code < 500, response.content
    json.loads(response.content)


def test_failed_validation_saves_no_idempotency_key(stripe_a: Stripe) -> None:
    response = stripe_a.post(
        "payment_intents",
        {"amount": "10.5", "currency": "usd"},
        headers={"Idempotency-Key": "bad-amount"},
    )

    assert _error(response)["param"] == "amount"
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("body", ["[1, 2, 3]", '"amount"', "42"])
def test_body_that_is_not_an_object_is_a_400_with_or_without_idempotency_key(
    stripe_a: Stripe, body: str
) -> None:
    for headers in ({}, {"Idempotency-Key": "not-an-object"}):
        response = stripe_a.client.post(
            "/v1/payment_intents", body, content_type="application/json", headers=headers
        )

        assert _error(response)["type"] == "invalid_request_error"
    assert not IdempotencyKey.objects.exists()
