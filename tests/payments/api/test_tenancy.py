"""Tenancy (DESIGN rule 8): merchant B's key gets 404 `resource_missing` on
every route that names merchant A's objects, and B's lists never show them.

The tables below list every route of `payments.api.urls` and every method
it serves; `test_every_route_and_method_is_in_the_tables` fails when one is
added without a row here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import URLPattern

from payments.api import urls
from tests.payments.api.conftest import Stripe

Ids = dict[str, str]
Row = tuple[str, str, str, dict[str, Any] | None]

# (route name, method, url template, body): B gets 404 resource_missing.
# Templates name A's objects: pi (captured, partly refunded), pi_auth (an
# authorisation), pi_open (unconfirmed), ch, re, dp (on a second, disputed
# payment), cus, pm, evt, txn, we; and B's own customer and card, cus_b and pm_b.
MISSING: list[Row] = [
    ("processor", "GET", "simulator/processors/no-such-processor", None),
    ("processor-force-open", "POST", "simulator/processors/no-such-processor/force_open", {}),
    ("processor-reset", "POST", "simulator/processors/no-such-processor/reset", {}),
    (
        "payment-intents",
        "POST",
        "payment_intents",
        {"amount": 1000, "currency": "usd", "customer": "{cus}"},
    ),
    (
        "payment-intents",
        "POST",
        "payment_intents",
        {"amount": 1000, "currency": "usd", "payment_method": "{pm}"},
    ),
    ("payment-intent", "GET", "payment_intents/{pi}", None),
    ("payment-intent", "POST", "payment_intents/{pi}", {"metadata": {"owner": "b"}}),
    ("payment-intent", "POST", "payment_intents/{pi_open}", {"amount": 1}),
    (
        "payment-intent-confirm",
        "POST",
        "payment_intents/{pi_open}/confirm",
        {"payment_method": "pm_card_visa"},
    ),
    ("payment-intent-capture", "POST", "payment_intents/{pi_auth}/capture", {}),
    ("payment-intent-cancel", "POST", "payment_intents/{pi_auth}/cancel", {}),
    ("refunds", "POST", "refunds", {"payment_intent": "{pi}", "amount": 1}),
    ("refunds", "POST", "refunds", {"charge": "{ch}", "amount": 1}),
    ("refund", "GET", "refunds/{re}", None),
    ("customer", "GET", "customers/{cus}", None),
    ("customer", "POST", "customers/{cus}", {"name": "Taken over"}),
    ("customer", "DELETE", "customers/{cus}", None),
    ("customer-payment-methods", "GET", "customers/{cus}/payment_methods", None),
    ("payment-method", "GET", "payment_methods/{pm}", None),
    ("payment-method-attach", "POST", "payment_methods/{pm}/attach", {"customer": "{cus_b}"}),
    ("payment-method-attach", "POST", "payment_methods/{pm_b}/attach", {"customer": "{cus}"}),
    ("payment-method-detach", "POST", "payment_methods/{pm}/detach", {}),
    ("charge", "GET", "charges/{ch}", None),
    ("dispute", "GET", "disputes/{dp}", None),
    ("event", "GET", "events/{evt}", None),
    ("balance-transaction", "GET", "balance_transactions/{txn}", None),
    ("webhook-endpoint", "GET", "webhook_endpoints/{we}", None),
    ("webhook-endpoint", "POST", "webhook_endpoints/{we}", {"disabled": True}),
    ("webhook-endpoint", "DELETE", "webhook_endpoints/{we}", None),
    ("webhook-endpoint-roll-secret", "POST", "webhook_endpoints/{we}/roll_secret", {}),
    ("webhook-endpoint-resend", "POST", "webhook_endpoints/{we}/resend", {"event": "{evt}"}),
]

# (route name, method, url template, query): B's answer shows none of A's objects
# (an empty list, or a 404 for a filter naming A's object).
HIDDEN: list[Row] = [
    ("payment-intents", "GET", "payment_intents", {}),
    ("payment-intents", "GET", "payment_intents", {"customer": "{cus}"}),
    ("payment-intents", "GET", "payment_intents", {"ending_before": "pi_0"}),
    ("refunds", "GET", "refunds", {}),
    ("refunds", "GET", "refunds", {"payment_intent": "{pi}"}),
    ("refunds", "GET", "refunds", {"charge": "{ch}"}),
    ("customers", "GET", "customers", {}),
    ("customers", "GET", "customers", {"email": "a-customer@example.com"}),
    ("payment-methods", "GET", "payment_methods", {"customer": "{cus}"}),
    ("charges", "GET", "charges", {}),
    ("charges", "GET", "charges", {"payment_intent": "{pi}"}),
    ("disputes", "GET", "disputes", {}),
    ("disputes", "GET", "disputes", {"payment_intent": "{dp_pi}"}),
    ("events", "GET", "events", {"limit": 100}),
    ("events", "GET", "events", {"type": "payment_intent.succeeded"}),
    ("balance", "GET", "balance", {}),
    ("balance-transactions", "GET", "balance_transactions", {"limit": 100}),
    ("balance-transactions", "GET", "balance_transactions", {"source": "{ch}"}),
    ("webhook-endpoints", "GET", "webhook_endpoints", {}),
]

# Creating something that names nothing of another merchant's: nothing to leak.
NOTHING_TO_LEAK = {
    ("customers", "POST"),
    ("payment-methods", "POST"),
    ("webhook-endpoints", "POST"),
    # The simulated processors are PayLab's shared infrastructure, owned by no
    # merchant (tests/payments/processors/test_processors_api.py).
    # Routes naming one are in MISSING with a name that does not exist.
    ("processors", "GET"),
    ("processor-outages", "GET"),
    ("processor-outages", "POST"),
}


def _fill(value: Any, ids: Ids) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _call(stripe: Stripe, method: str, path: str, body: dict[str, Any] | None) -> Any:
    if method == "GET":
        return stripe.get(path, body)
    if method == "DELETE":
        return stripe.delete(path)
    return stripe.post(path, body)


@pytest.fixture
def a_objects(stripe_a: Stripe, stripe_b: Stripe) -> Ids:
    """A's objects, each made through the API as A's integration would."""
    cus = stripe_a.ok(stripe_a.post("customers", {"email": "a-customer@example.com"}))["id"]
    pm = stripe_a.ok(
        stripe_a.post(
            "payment_methods",
            {
                "type": "card",
                "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2040},
            },
        )
    )["id"]
    stripe_a.ok(stripe_a.post(f"payment_methods/{pm}/attach", {"customer": cus}))
    # A refund cannot follow a dispute on one charge, so the dispute is on a
    # second captured payment.
    paid = stripe_a.pay(amount=5000, customer=cus)
    refund = stripe_a.ok(stripe_a.post("refunds", {"payment_intent": paid["id"], "amount": 1000}))
    disputed = stripe_a.pay("pm_card_createDispute", amount=3000)
    dispute = stripe_a.ok(stripe_a.get("disputes"))["data"][0]
    authorized = stripe_a.pay(amount=2000, manual=True)
    unconfirmed = stripe_a.ok(stripe_a.post("payment_intents", {"amount": 700, "currency": "usd"}))
    event = stripe_a.ok(stripe_a.get("events", {"type": "payment_intent.succeeded", "limit": 1}))
    charge = stripe_a.ok(stripe_a.get(f"charges/{paid['latest_charge']}"))
    endpoint = stripe_a.ok(
        stripe_a.post(
            "webhook_endpoints",
            {"url": "https://a.example/hooks", "enabled_events": ["payment_intent.succeeded"]},
        )
    )
    cus_b = stripe_b.ok(stripe_b.post("customers", {"email": "b-customer@example.com"}))["id"]
    pm_b = stripe_b.ok(
        stripe_b.post("payment_methods", {"type": "card", "card": {"token": "pm_card_visa"}})
    )["id"]
    assert dispute["charge"] == disputed["latest_charge"]
    return {
        "pi": paid["id"],
        "pi_auth": authorized["id"],
        "pi_open": unconfirmed["id"],
        "ch": paid["latest_charge"],
        "re": refund["id"],
        "dp": dispute["id"],
        "dp_pi": disputed["id"],
        "cus": cus,
        "pm": pm,
        "evt": event["data"][0]["id"],
        "txn": charge["balance_transaction"],
        "we": endpoint["id"],
        "cus_b": cus_b,
        "pm_b": pm_b,
    }


def _a_state(stripe_a: Stripe, ids: Ids) -> list[Any]:
    """Everything of A's that B's requests could have changed."""
    paths = [f"payment_intents/{ids[k]}" for k in ("pi", "pi_auth", "pi_open", "dp_pi")] + [
        f"customers/{ids['cus']}",
        f"payment_methods/{ids['pm']}",
        f"webhook_endpoints/{ids['we']}",
        f"charges/{ids['ch']}",
        "balance",
    ]
    state = [stripe_a.ok(stripe_a.get(path)) for path in paths]
    state.append(len(stripe_a.ok(stripe_a.get("events", {"limit": 100}))["data"]))
    state.append(len(stripe_a.ok(stripe_a.get("refunds"))["data"]))
    return state


def test_other_merchants_objects_are_404_on_every_route(
    stripe_a: Stripe, stripe_b: Stripe, a_objects: Ids
) -> None:
    # given A's objects, as A sees them
    before = _a_state(stripe_a, a_objects)

    # when B names them on every route, then each answer is a 404
    for name, method, template, body in MISSING:
        path = _fill(template, a_objects)
        response = _call(stripe_b, method, path, _fill(body, a_objects))
        assert response.status_code == 404, (name, method, path, response.content)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error", (name, method, path)
        assert error["code"] == "resource_missing", (name, method, path)

    # and A's objects are as they were
    assert _a_state(stripe_a, a_objects) == before


def test_the_same_requests_succeed_for_the_owner(stripe_a: Stripe, a_objects: Ids) -> None:
    # The 404s above are tenancy, not broken rows: A's own key gets answers.
    for name, method, template, body in MISSING:
        # (the simulated processors' rows name a processor that does not exist)
        if method != "GET" or template.startswith("simulator/"):
            continue
        response = _call(stripe_a, method, _fill(template, a_objects), _fill(body, a_objects))
        assert response.status_code == 200, (name, template, response.content)


def test_other_merchants_objects_never_appear_in_lists(
    stripe_a: Stripe, stripe_b: Stripe, a_objects: Ids
) -> None:
    # given B's own payment, so that B's lists are not trivially empty
    own = stripe_b.pay(amount=1234)
    a_ids = {v for k, v in a_objects.items() if not k.endswith("_b")}

    for name, method, template, query in HIDDEN:
        response = _call(stripe_b, method, _fill(template, a_objects), _fill(query, a_objects))
        assert response.status_code in (200, 404), (name, query, response.content)
        text = response.content.decode()
        leaked = [object_id for object_id in a_ids if object_id in text]
        assert leaked == [], (name, query, leaked)

    # B's balance is B's own payment's net, nothing of A's
    balance = stripe_b.ok(stripe_b.get("balance"))
    charge = stripe_b.ok(
        stripe_b.get(f"charges/{own['latest_charge']}", {"expand": ["balance_transaction"]})
    )
    assert balance["available"] == [
        {
            "amount": charge["balance_transaction"]["net"],
            "currency": "usd",
            "source_types": {"card": charge["balance_transaction"]["net"]},
        }
    ]


def test_a_lists_do_show_its_objects(stripe_a: Stripe, a_objects: Ids) -> None:
    # The lists above are tenancy, not empty: A's own key sees its objects.
    seen = ""
    for _, method, template, query in HIDDEN:
        seen += json.dumps(
            _call(stripe_a, method, _fill(template, a_objects), _fill(query, a_objects)).json()
        )
    missing = [k for k, v in a_objects.items() if not k.endswith("_b") and v not in seen]
    assert missing == []


def _routes() -> dict[str, set[str]]:
    """Every named route of the merchant API and the methods its view serves."""
    routes: dict[str, set[str]] = {}
    for pattern in urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        view_class = pattern.callback.view_class  # type: ignore[attr-defined]
        methods = {m.upper() for m in view_class.http_method_names if m not in ("options", "head")}
        assert pattern.name, f"unnamed route {pattern.pattern}"
        routes[pattern.name] = methods
    return routes


def test_every_route_and_method_is_in_the_tables() -> None:
    covered = {(name, method) for name, method, _, _ in MISSING + HIDDEN} | NOTHING_TO_LEAK
    required = {(name, method) for name, methods in _routes().items() for method in methods}

    assert required - covered == set(), "add these routes to the tenancy tables"
    assert covered - required == set(), "the tables name routes that do not exist"


def test_every_route_naming_an_object_has_a_404_row() -> None:
    with_id = {
        pattern.name
        for pattern in urls.urlpatterns
        if isinstance(pattern, URLPattern) and "<str:id>" in str(pattern.pattern)
    }
    by_method = {(name, method) for name, method, _, _ in MISSING}

    uncovered = {
        (name, method)
        for name, methods in _routes().items()
        if name in with_id
        for method in methods
        if (name, method) not in by_method
    }
    assert uncovered == set()
