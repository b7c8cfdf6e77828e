"""payments.services.batch: queued writes behave as if each ran at once.

On PostgreSQL the writes wait in a queue and travel in one query; on SQLite
they run at once. The assertions are the same in both modes: a read sees
the writes before it, a rolled-back savepoint takes its writes with it, an
exception leaving the block does not lose what was written before it, and
a percent sign or a quote in a value arrives intact.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from payments import ids
from payments.models import Customer
from payments.services import batch
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
