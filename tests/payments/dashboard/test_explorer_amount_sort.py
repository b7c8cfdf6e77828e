"""The explorer sorted by amount pages by (amount, id) with a keyset: many
payments share an amount, so the id breaks the tie, and page after page
(and back) covers every payment once, in order, both ways."""

from __future__ import annotations

import pytest

from payments import selectors
from payments.selectors import Page, PaymentSearch
from tests.conftest import MerchantWithKey
from tests.payments.dashboard.conftest import pay

pytestmark = pytest.mark.django_db


def walk(search: PaymentSearch, limit: int) -> list[Page]:
    pages = [selectors.payment_search(search, limit=limit)]
    while pages[-1].next_cursor is not None:
        pages.append(selectors.payment_search(search, after=pages[-1].next_cursor, limit=limit))
    return pages


@pytest.mark.parametrize("descending", [False, True])
def test_amount_sort_pages_continue_exactly_across_equal_amounts(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey, descending: bool
) -> None:
    m = merchant_a.merchant
    # Seven payments, five of them of the same amount: a page boundary
    # falls inside the run of equal amounts.
    amounts = [1_500, 700, 1_500, 1_500, 2_000, 1_500, 1_500]
    made = [pay(m, amount=amount) for amount in amounts]
    pay(merchant_b.merchant, amount=1_500)  # another merchant's: not listed
    expected = [
        intent.id
        for intent in sorted(
            made, key=lambda intent: (intent.amount, intent.id), reverse=descending
        )
    ]
    search = PaymentSearch(scope=m.pk, sort="amount", descending=descending)
    pages = walk(search, limit=2)
    listed = [row.id for page in pages for row in page.rows]
    # Page 2 starts exactly after page 1: no repeat, no gap, in (amount, id) order.
    assert listed == expected
    assert [len(page.rows) for page in pages] == [2, 2, 2, 1]
    # And back: the page before page 3 is page 2 again.
    back = selectors.payment_search(search, before=pages[2].prev_cursor or "", limit=2)
    assert [row.id for row in back.rows] == [row.id for row in pages[1].rows]
    assert back.next_cursor is not None


def test_amount_sort_combines_with_an_amount_range_and_a_currency(
    merchant_a: MerchantWithKey,
) -> None:
    m = merchant_a.merchant
    inside = [pay(m, amount=1_500) for _ in range(3)] + [pay(m, amount=1_000)]
    pay(m, amount=2_500)  # above the range
    pay(m, amount=1_500, currency="eur")  # another currency
    search = PaymentSearch(
        scope=m.pk,
        sort="amount",
        descending=True,
        currency="usd",
        amount_min="10",
        amount_max="20",
    )
    listed = [row.id for page in walk(search, limit=3) for row in page.rows]
    expected = sorted(inside, key=lambda intent: (intent.amount, intent.id), reverse=True)
    assert listed == [intent.id for intent in expected]


@pytest.mark.parametrize("descending", [False, True])
def test_amount_sort_with_a_range_and_no_currency_pages_across_exponents(
    merchant_a: MerchantWithKey, descending: bool
) -> None:
    # Given payments in usd and eur (2 decimals) and jpy (none), inside and
    # outside 100-200 in major units: $100.00-$200.00 is 10,000-20,000 in
    # minor units, ¥100-¥200 is 100-200. Equal amounts across currencies,
    # and an in-range jpy amount that is out of range read as usd cents.
    m = merchant_a.merchant
    inside = [
        pay(m, amount=10_000),
        pay(m, amount=15_000),
        pay(m, amount=15_000, currency="eur"),
        pay(m, amount=20_000),
        pay(m, amount=100, currency="jpy"),
        pay(m, amount=150, currency="jpy"),
        pay(m, amount=150, currency="jpy"),
        pay(m, amount=200, currency="jpy"),
    ]
    pay(m, amount=20_001)  # $200.01
    pay(m, amount=9_999, currency="eur")  # €99.99
    pay(m, amount=201, currency="jpy")  # ¥201
    pay(m, amount=15_000, currency="jpy")  # ¥15,000: a usd amount in range, not a jpy one
    expected = [
        intent.id
        for intent in sorted(
            inside, key=lambda intent: (intent.amount, intent.id), reverse=descending
        )
    ]
    search = PaymentSearch(
        scope=m.pk, sort="amount", descending=descending, amount_min="100", amount_max="200"
    )

    # When it is read three at a time
    pages = walk(search, limit=3)

    # Then the pages follow (amount, id) across the currencies: no gap, no
    # repeat, nothing out of range
    assert [row.id for page in pages for row in page.rows] == expected
    assert [len(page.rows) for page in pages] == [3, 3, 2]
    assert pages[0].prev_cursor is None
    # And back from the last page: pages 2 and 1 again, then nothing before
    back = selectors.payment_search(search, before=pages[2].prev_cursor or "", limit=3)
    assert [row.id for row in back.rows] == [row.id for row in pages[1].rows]
    first = selectors.payment_search(search, before=back.prev_cursor or "", limit=3)
    assert [row.id for row in first.rows] == [row.id for row in pages[0].rows]
    assert first.prev_cursor is None
