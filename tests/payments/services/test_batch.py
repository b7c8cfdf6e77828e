"""payments.services.batch: queued writes behave as if each ran at once.

On PostgreSQL the writes wait in a queue and travel in one query; on SQLite
they run at once. The assertions are the same in both modes: a read sees
the writes before it, a rolled-back savepoint takes its writes with it, an
exception leaving the block does not lose what was written before it, and
a percent sign or a quote in a value arrives intact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, models, transaction
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int8

from payments import ids
from payments.models import Customer, PaymentMethod
from payments.services import batch
from payments.state_machine import Status
from tests.conftest import MerchantWithKey


class Boom(Exception):
    pass


def _customer(merchant: MerchantWithKey, name: str) -> Customer:
    return Customer(
        id=ids.new_id("cus"),
        merchant=merchant.merchant,
        name=name,
        metadata={"note": "100% 'quoted'; -- not a comment"},
    )


def test_a_read_sees_the_writes_queued_before_it(merchant_a: MerchantWithKey) -> None:
    # given a customer inserted inside a batch
    customer = _customer(merchant_a, "first")
    with transaction.atomic(), batch.batched():
        batch.insert([customer])
        # when the same transaction reads it back
        found = Customer.objects.get(pk=customer.pk)
        # then it is there, values intact
        assert found.name == "first"
        assert found.metadata == {"note": "100% 'quoted'; -- not a comment"}
        # and an update queued after the read lands too
        customer.name = "renamed 50%"
        batch.update(customer, ["name"])
    assert Customer.objects.get(pk=customer.pk).name == "renamed 50%"


def test_a_rolled_back_savepoint_takes_its_queued_writes_with_it(
    merchant_a: MerchantWithKey,
) -> None:
    kept, dropped = _customer(merchant_a, "kept"), _customer(merchant_a, "dropped")
    with transaction.atomic(), batch.batched():
        batch.insert([kept])
        # when a nested atomic block queues a write and fails
        with pytest.raises(Boom), transaction.atomic():
            batch.insert([dropped])
            raise Boom
    # then only the write outside it survives
    assert Customer.objects.filter(pk=kept.pk).exists()
    assert not Customer.objects.filter(pk=dropped.pk).exists()


def test_an_exception_leaving_the_block_still_sends_its_writes(
    merchant_a: MerchantWithKey,
) -> None:
    customer = _customer(merchant_a, "written before the error")
    # when a caller catches an error raised inside the batch and commits
    with transaction.atomic(), pytest.raises(Boom), batch.batched():
        batch.insert([customer])
        raise Boom
    # then what was written before the error is there, as if run at once
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_nested_blocks_flush_once_at_the_outermost(merchant_a: MerchantWithKey) -> None:
    first, second = _customer(merchant_a, "a"), _customer(merchant_a, "b")
    with transaction.atomic(), batch.batched():
        with batch.batched():
            batch.insert([first])
        batch.insert([second])
        assert Customer.objects.filter(pk__in=[first.pk, second.pk]).count() == 2


# --- the queue's own literals (PostgreSQL: the only backend that queues) ---------------

_TRICKY_TEXT = [
    "",
    "it's",
    "''",
    "back\\slash \\' \\\\",
    "100% %s %(name)s %%",
    "-- not a comment",
    "/* nor this */",
    "line\nbreak\ttab\r",
    "é 漢字 🎉",
    "'; DROP TABLE payments_customer; --",
    "$$ dollar $$ $tag$",
    "E'\\x41'",
]
_CASES: list[tuple[object, str]] = [
    *[(text, "text") for text in _TRICKY_TEXT],
    (0, "bigint"),
    (-1, "bigint"),
    (2**63 - 1, "bigint"),
    (-(2**63), "bigint"),
    (True, "boolean"),
    (False, "boolean"),
    (None, "text"),
    (datetime(2026, 12, 2, 16, 10, 9, 982316, tzinfo=UTC), "timestamptz"),
    (datetime(2026, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))), "timestamptz"),
    (b"", "bytea"),
    (b"\x00\xff'\\", "bytea"),
    (Jsonb({"note": 'it\'s \\ "quoted" 100% é', "n": [1, -2.5, None, True]}), "jsonb"),
    (Jsonb([]), "jsonb"),
    (Int8(-7), "bigint"),
    (Status.SUCCEEDED, "text"),
]


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(("value", "sql_type"), _CASES, ids=repr)
def test_a_queued_literal_reads_back_as_the_value_psycopg_would_send(
    value: object, sql_type: str
) -> None:
    # given the literal the queue writes for a value
    literal = batch._literal(value).replace("%", "%%")  # the query below has a parameter
    # when PostgreSQL compares it with the same value bound by psycopg
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT ({literal})::{sql_type} IS NOT DISTINCT FROM (%s)::{sql_type}",  # noqa: S608
            [value],
        )
        (same,) = cursor.fetchone()
    # then they are the same value
    assert same is True


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_values_the_queue_cannot_quote_go_through_psycopg(merchant_a: MerchantWithKey) -> None:
    # given values the queue leaves to psycopg: a NUL in a text, a Decimal, a naive datetime
    for value in ("nul \x00 byte", Decimal("1.5"), datetime(2026, 1, 1)):
        with pytest.raises(batch._Unquotable):
            batch._literal(value)
    # when a statement with one of them is queued
    with transaction.atomic(), batch.batched():
        batch.execute(
            "UPDATE accounts_merchant SET name = %s WHERE id = %s AND %s > 0",
            ["renamed 'M'", merchant_a.merchant.pk, Decimal("1.5")],
        )
    # then it was merged by psycopg and ran
    merchant_a.merchant.refresh_from_db()
    assert merchant_a.merchant.name == "renamed 'M'"
    # and a NUL is refused with psycopg's own error, nothing written
    with pytest.raises(psycopg.DataError), transaction.atomic(), batch.batched():
        batch.execute(
            "UPDATE accounts_merchant SET name = %s WHERE id = %s",
            ["nul \x00", merchant_a.merchant.pk],
        )
    merchant_a.merchant.refresh_from_db()
    assert merchant_a.merchant.name == "renamed 'M'"


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_queue_writes_its_own_literals_on_a_standard_server() -> None:
    # given PostgreSQL's default standard_conforming_strings = on
    with transaction.atomic(), batch.batched():
        queue = batch._queue()
        assert queue is not None
        # then queued statements are merged by the queue, not by psycopg
        assert queue.quotes is True
        assert queue.merge("SELECT %s, %s", ["it's", -1]) == "SELECT 'it''s',  -1"


def _row(model: type[models.Model], pk: object) -> dict[str, object]:
    return model.objects.filter(pk=pk).values().get()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.django_db
def test_a_queued_insert_stores_what_django_stores(merchant_a: MerchantWithKey) -> None:
    # given two payment methods with the same awkward values (quotes, a
    # percent, unicode, an enum member, booleans, None, an offset datetime,
    # nested JSON), one for Django's save and one for the queue
    moment = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=-3)))

    def method(pk: str) -> PaymentMethod:
        return PaymentMethod(
            id=pk,
            merchant=merchant_a.merchant,
            customer=None,
            type=PaymentMethod.Type.CARD,
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=2031,
            details={"note": "it's 100% é; -- \\", "list": [1, None, True, "x"]},
            billing_details={"name": "O'Brien"},
            metadata={},
            created=moment,
        )

    saved, queued = method(ids.new_id("pm")), method(ids.new_id("pm"))
    saved.save(force_insert=True)
    with transaction.atomic(), batch.batched():
        batch.insert([queued])
    # then both rows read back the same, field by field
    expected, got = _row(PaymentMethod, saved.pk), _row(PaymentMethod, queued.pk)
    assert {**got, "id": None} == {**expected, "id": None}
    assert got["created"] == moment
    # and an update of the same awkward values lands the same way
    for row in (saved, queued):
        row.details = {"note": "'; UPDATE x; --", "n": -5}
        row.last4 = "0'00"
        row.exp_year = 2040
    saved.save(update_fields=["details", "last4", "exp_year"])
    with transaction.atomic(), batch.batched():
        batch.update(queued, ["details", "last4", "exp_year"])
    expected, got = _row(PaymentMethod, saved.pk), _row(PaymentMethod, queued.pk)
    assert {**got, "id": None} == {**expected, "id": None}
    assert got["last4"] == "0'00"
