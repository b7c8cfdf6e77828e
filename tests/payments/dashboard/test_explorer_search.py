"""The explorer's free search, one kind at a time: payment, charge and
customer ids, customer or receipt email, a card's last4, metadata `key:value`
and a bare metadata value — scoped for merchant users, combined with the
other filters and paged by keyset. On PostgreSQL each kind's query is shown to
be answerable from its index (the plan names it)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Model

from accounts.models import User
from payments import selectors
from payments.models import Customer, PaymentIntent, PaymentMethod
from payments.selectors import PaymentSearch
from payments.services.customers import customer_create
from tests.conftest import MerchantWithKey, logged_in
from tests.payments.dashboard.conftest import htmx, pay

pytestmark = pytest.mark.django_db

LIST = "/payments/"


def found(user: User, q: str, **params: str) -> set[str]:
    """The ids of the payments the explorer lists for the search `q`."""
    response = logged_in(user).get(LIST, {"q": q, **params}, **htmx())
    assert response.status_code == 200
    body = response.content.decode()
    return {pk for pk in PaymentIntent.objects.values_list("id", flat=True) if pk in body}


def test_search_by_customer_email_is_case_insensitive_and_scoped(
    merchant_a: MerchantWithKey,
    merchant_b: MerchantWithKey,
    owner_a: User,
    operator_user: User,
) -> None:
    a, b = merchant_a.merchant, merchant_b.merchant
    alice_a = customer_create(merchant=a, fields={"email": "Alice@Example.test"})
    alice_b = customer_create(merchant=b, fields={"email": "alice@example.test"})
    mine = pay(a, customer=alice_a.id)
    theirs = pay(b, customer=alice_b.id)
    pay(a)  # no customer
    by_receipt = pay(a, receipt_email="ALICE@example.test")
    # A merchant user finds their customer's payment and the receipt email,
    # whatever the case, and never merchant B's customer of the same email.
    assert found(owner_a, "alice@EXAMPLE.test") == {mine.id, by_receipt.id}
    # Staff find both merchants' customers; the merchant filter narrows it.
    assert found(operator_user, "alice@example.test") == {mine.id, theirs.id, by_receipt.id}
    assert found(operator_user, "alice@example.test", merchant=str(b.pk)) == {theirs.id}
    assert found(owner_a, "nobody@example.test") == set()


def test_search_by_last4_finds_the_cards_payments(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey, owner_a: User
) -> None:
    visa = pay(merchant_a.merchant, card="pm_card_visa")  # 4242
    mastercard = pay(merchant_a.merchant, card="pm_card_mastercard")  # 4444
    pay(merchant_b.merchant, card="pm_card_mastercard")  # another merchant's
    assert found(owner_a, "4444") == {mastercard.id}
    assert found(owner_a, "4242") == {visa.id}
    assert found(owner_a, "0000") == set()


def test_search_by_metadata_key_value_and_by_bare_value(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey, owner_a: User
) -> None:
    m = merchant_a.merchant
    order = pay(m, metadata={"order": "A-42", "channel": "web"})
    ref = pay(m, metadata={"ref": "A-42"})
    web = pay(m, metadata={"channel": "web"})
    pay(m)  # no metadata
    pay(merchant_b.merchant, metadata={"order": "A-42"})  # another merchant's
    # `key:value` (or `key=value`): that key holds exactly that value.
    assert found(owner_a, "order:A-42") == {order.id}
    assert found(owner_a, "ref=A-42") == {ref.id}
    assert found(owner_a, "order:A-4") == set()
    # A bare value: any top-level key holds exactly it.
    assert found(owner_a, "A-42") == {order.id, ref.id}
    assert found(owner_a, "web") == {order.id, web.id}
    # Not a substring, not another case, and never a key.
    assert found(owner_a, "A-4") == set()
    assert found(owner_a, "a-42") == set()
    assert found(owner_a, "channel") == set()


def test_search_by_charge_and_customer_id(merchant_a: MerchantWithKey, owner_a: User) -> None:
    m = merchant_a.merchant
    bob = customer_create(merchant=m, fields={"email": "bob@example.test"})
    first = pay(m, customer=bob.id)
    second = pay(m)
    assert first.latest_charge_id and second.latest_charge_id
    assert found(owner_a, first.latest_charge_id) == {first.id}
    assert found(owner_a, bob.id) == {first.id}
    assert found(owner_a, second.id) == {second.id}


def test_a_search_combines_with_filters_and_pages_by_keyset(
    merchant_a: MerchantWithKey, owner_a: User
) -> None:
    m = merchant_a.merchant
    tagged = [pay(m, metadata={"batch": "7"}) for _ in range(5)]
    held = pay(m, metadata={"batch": "7"}, manual=True)
    pay(m, metadata={"batch": "8"})
    # Another filter narrows the search's matches.
    assert found(owner_a, "7", status="requires_capture") == {held.id}
    # The matches page two at a time, newest first, with no gap or repeat,
    # and back again.
    search = PaymentSearch(scope=m.pk, search="batch:7")
    pages = [selectors.payment_search(search, limit=2)]
    while pages[-1].next_cursor is not None:
        pages.append(selectors.payment_search(search, after=pages[-1].next_cursor, limit=2))
    newest_first = [
        row.id
        for row in sorted([*tagged, held], key=lambda intent: (intent.created, intent.id))[::-1]
    ]
    assert [row.id for page in pages for row in page.rows] == newest_first
    assert [len(page.rows) for page in pages] == [2, 2, 2]
    back = selectors.payment_search(search, before=pages[2].prev_cursor or "", limit=2)
    assert [row.id for row in back.rows] == [row.id for row in pages[1].rows]
    # Sorted by amount, a search still pages by (amount, id).
    by_amount = selectors.payment_search(
        PaymentSearch(scope=m.pk, search="7", sort="amount", descending=False), limit=50
    )
    assert {row.id for row in by_amount.rows} == {held.id, *(t.id for t in tagged)}


# --- PostgreSQL: each kind is answered from its index -------------------------------


def replicate(model: type[Model], source: str, copies: int, **overrides: str) -> None:
    """`copies` copies of one row in one INSERT … SELECT: new ids, one
    second older each (`g` is the copy's number), columns overridden by SQL
    expressions — enough rows for the planner to prefer an index."""
    table = model._meta.db_table
    columns = [field.column for field in model._meta.concrete_fields]
    values = {"id": "id || '_' || g", "created": "created - g * interval '1 second'"}
    values.update(overrides)
    select = ", ".join(values.get(column, f'"{column}"') for column in columns)
    names = ", ".join(f'"{column}"' for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {select} "  # noqa: S608
            f"FROM {table}, generate_series(1, %s) AS g WHERE id = %s",
            [copies, source],
        )


def plan(search: PaymentSearch) -> str:
    """EXPLAIN of the explorer's first page for `search`; it never scans the
    big tables (the small ones, merchants and customers here, it may)."""
    text = selectors._payment_query(search).order_by("-created", "-pk")[:51].explain()
    assert "Seq Scan on payments_paymentintent" not in text, text
    assert "Seq Scan on payments_paymentmethod" not in text, text
    return text


@pytest.mark.postgres
def test_each_search_kind_is_answered_from_its_index(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey
) -> None:
    a = merchant_a.merchant
    alice = customer_create(merchant=a, fields={"email": "alice@example.test"})
    rare = pay(a, customer=alice.id, metadata={"order": "A-42"}, card="pm_card_mastercard")
    common = pay(a)
    # 20,000 more payments like the common one — no customer, receipt email
    # or metadata, a visa card each — and 20,000 other customers, so the
    # planner sees real tables.
    replicate(PaymentMethod, common.payment_method_id or "", 20_000)
    replicate(
        PaymentIntent,
        common.id,
        20_000,
        payment_method_id="payment_method_id || '_' || g",
        latest_charge_id="NULL",
    )
    replicate(Customer, alice.id, 20_000, email="'c' || g || '@example.test'")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    for scope in (None, a.pk):
        email = plan(PaymentSearch(scope=scope, search="ALICE@example.test"))
        assert "pi_receipt_email" in email, email
        for text in ("order:A-42", "A-42"):
            metadata = plan(PaymentSearch(scope=scope, search=text))
            assert "pi_metadata" in metadata, metadata
        # The intent's own card: the last4's (created, id) range.
        last4 = plan(PaymentSearch(scope=scope, search="4444"))
        assert "pi_card_last4" in last4, last4
        assert "pi_card_last4" in plan(PaymentSearch(scope=scope, search="0002"))
    assert "customer_email_upper" in Customer.objects.filter(email__iexact="ALICE@x").explain()
    assert [row.id for row in selectors.payment_search(PaymentSearch(search="4444")).rows] == [
        rare.id
    ]
