"""Stripe's list objects: shape, limit, keyset paging, created filters, expand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.payments.api.conftest import Stripe

# Collection routes that take no required filter, and how to make one object.
COLLECTIONS = [
    "payment_intents",
    "customers",
    "refunds",
    "charges",
    "disputes",
    "events",
    "balance_transactions",
]


def _make_customers(stripe: Stripe, count: int) -> list[str]:
    return [
        stripe.ok(stripe.post("customers", {"email": f"c{i}@example.com"}))["id"]
        for i in range(count)
    ]


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_list_object_shape(stripe_a: Stripe, collection: str) -> None:
    stripe_a.pay(amount=1000)
    stripe_a.ok(stripe_a.post("customers", {"email": "shape@example.com"}))

    listed = stripe_a.ok(stripe_a.get(collection))

    assert listed["object"] == "list"
    assert isinstance(listed["data"], list)
    assert listed["has_more"] is False
    assert listed["url"] == f"/v1/{collection}"


@pytest.mark.parametrize("collection", COLLECTIONS)
@pytest.mark.parametrize("limit", [0, 101, -1, "ten"])
def test_limit_outside_1_to_100_is_refused(stripe_a: Stripe, collection: str, limit: Any) -> None:
    response = stripe_a.get(collection, {"limit": limit})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "limit"


@pytest.mark.parametrize(("limit", "returned"), [(1, 1), (3, 3), (100, 5)])
def test_limit_caps_the_page(stripe_a: Stripe, limit: int, returned: int) -> None:
    _make_customers(stripe_a, 5)

    listed = stripe_a.ok(stripe_a.get("customers", {"limit": limit}))

    assert len(listed["data"]) == returned
    assert listed["has_more"] is (returned < 5)


def test_default_limit_is_ten(stripe_a: Stripe) -> None:
    _make_customers(stripe_a, 11)

    listed = stripe_a.ok(stripe_a.get("customers"))

    assert (len(listed["data"]), listed["has_more"]) == (10, True)


def _newest_first(ids: list[str], created: list[int]) -> None:
    assert ids == sorted(ids, reverse=True)
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("collection", "make"),
    [
        ("customers", lambda s: _make_customers(s, 7)),
        ("payment_intents", lambda s: [s.pay(amount=100 + i)["id"] for i in range(7)]),
    ],
    ids=["customers", "payment_intents"],
)
def test_paging_forward_and_back_returns_everything_once_newest_first(
    stripe_a: Stripe, collection: str, make: Callable[[Stripe], list[str]]
) -> None:
    # given seven objects
    made = make(stripe_a)

    # when paged forward two at a time with starting_after
    forward: list[dict[str, Any]] = []
    cursor: dict[str, Any] = {}
    while True:
        page = stripe_a.ok(stripe_a.get(collection, {"limit": 2, **cursor}))
        forward += page["data"]
        if not page["has_more"]:
            break
        cursor = {"starting_after": page["data"][-1]["id"]}

    # then every object came exactly once, newest first
    ids = [o["id"] for o in forward]
    assert sorted(ids) == sorted(made)
    assert len(set(ids)) == len(ids)
    _newest_first(ids, [o["created"] for o in forward])

    # when paged back from the oldest with ending_before
    backward: list[dict[str, Any]] = []
    cursor = {"ending_before": ids[-1]}
    while True:
        page = stripe_a.ok(stripe_a.get(collection, {"limit": 2, **cursor}))
        # each page is itself newest first; earlier pages hold older objects
        backward = page["data"] + backward
        if not page["has_more"]:
            break
        cursor = {"ending_before": page["data"][0]["id"]}

    # then the same objects but the oldest, in the same order
    assert [o["id"] for o in backward] == ids[:-1]


def test_starting_after_the_last_object_is_an_empty_page(stripe_a: Stripe) -> None:
    made = _make_customers(stripe_a, 2)

    page = stripe_a.ok(stripe_a.get("customers", {"starting_after": min(made)}))

    assert (page["data"], page["has_more"]) == ([], False)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Set the time the services stamp on what they create."""

    def set_to(moment: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return set_to


def test_created_filters(stripe_a: Stripe, clock: Callable[[datetime], None]) -> None:
    # given customers created a thousand seconds apart
    start = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    made: dict[int, str] = {}
    for step in range(4):
        moment = start + timedelta(seconds=1000 * step)
        clock(moment)
        made[int(moment.timestamp())] = _make_customers(stripe_a, 1)[0]
    stamps = sorted(made)

    def listed(created: Any) -> list[str]:
        page = stripe_a.ok(stripe_a.get("customers", {"created": created}))
        return [c["id"] for c in page["data"]]

    # then each bound includes its own second, and they combine
    assert listed({"gte": stamps[1], "lte": stamps[2]}) == [made[stamps[2]], made[stamps[1]]]
    assert listed({"gt": stamps[1]}) == [made[stamps[3]], made[stamps[2]]]
    assert listed({"lt": stamps[1]}) == [made[stamps[0]]]
    assert listed({"gte": stamps[3] + 1}) == []
    assert listed(stamps[2]) == [made[stamps[2]]]


@pytest.mark.parametrize("created", [{"gte": "yesterday"}, {"after": "1"}])
def test_bad_created_filter_is_refused(stripe_a: Stripe, created: dict[str, str]) -> None:
    response = stripe_a.get("customers", {"created": created})

    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("created[")


# --- expand ------------------------------------------------------------------------


def _customer_payment(stripe: Stripe) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = stripe.ok(stripe.post("customers", {"email": "exp@example.com", "name": "Ex"}))
    paid = stripe.pay(amount=1000, customer=customer["id"])
    return customer, paid


def test_expand_data_customer_on_a_list(stripe_a: Stripe) -> None:
    customer, paid = _customer_payment(stripe_a)

    # `expand[]=…`, the bracket form browsers and curl users write
    response = stripe_a.client.get("/v1/payment_intents?expand[]=data.customer")

    page = stripe_a.ok(response)
    assert page["data"][0]["id"] == paid["id"]
    assert page["data"][0]["customer"] == customer
    plain = stripe_a.ok(stripe_a.get("payment_intents"))
    assert plain["data"][0]["customer"] == customer["id"]


def test_expand_on_retrieve(stripe_a: Stripe) -> None:
    customer, paid = _customer_payment(stripe_a)

    expanded = stripe_a.ok(
        stripe_a.get(
            f"payment_intents/{paid['id']}",
            {"expand": ["customer", "payment_method", "latest_charge"]},
        )
    )

    assert expanded["customer"] == customer
    assert expanded["payment_method"]["id"] == paid["payment_method"]
    assert expanded["payment_method"]["object"] == "payment_method"
    assert expanded["latest_charge"]["id"] == paid["latest_charge"]
    assert expanded["latest_charge"]["object"] == "charge"
    assert expanded["latest_charge"] == stripe_a.ok(
        stripe_a.get(f"charges/{paid['latest_charge']}")
    )
    unexpanded = {
        **expanded,
        "customer": customer["id"],
        "payment_method": paid["payment_method"],
        "latest_charge": paid["latest_charge"],
    }
    assert unexpanded == stripe_a.ok(stripe_a.get(f"payment_intents/{paid['id']}"))


def test_expand_on_create(stripe_a: Stripe) -> None:
    customer = stripe_a.ok(stripe_a.post("customers", {"email": "exp@example.com"}))

    paid = stripe_a.pay(customer=customer["id"], expand=["customer", "latest_charge"])

    assert paid["customer"] == customer
    assert paid["latest_charge"]["status"] == "succeeded"
