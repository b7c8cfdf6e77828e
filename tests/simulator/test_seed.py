"""Historical seeding through the bulk path leaves every invariant true."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from payments.models import Dispute, Event, OutboxMessage, PaymentIntent, Refund
from payments.services import verify
from simulator import seeding

pytestmark = pytest.mark.django_db


def test_seeding_2000_payments_leaves_verify_passing() -> None:
    call_command("seed", payments=2000, days=30, merchants=2, seed=1, batch=500)

    assert PaymentIntent.objects.count() == 2000
    statuses = set(PaymentIntent.objects.values_list("status", flat=True))
    assert {"succeeded", "requires_payment_method", "canceled"} <= statuses
    assert Refund.objects.exists() and Dispute.objects.exists()
    # history is not news: nothing is left to push or webhook, and no
    # outbox row is written for it at all
    assert Event.objects.count() > 2000
    assert not OutboxMessage.objects.exists()
    report = verify.run()
    assert report.violations == []
    assert report.checked["payments"] == 2000


def test_seeded_payments_carry_the_card_they_tried_declined_ones_too() -> None:
    call_command("seed", payments=300, days=30, merchants=1, seed=3, batch=100)

    declined = PaymentIntent.objects.filter(payment_method=None, status="requires_payment_method")
    assert declined.exists()
    # The bulk path writes the columns the services wrote when the shape
    # was recorded: the card of every payment, the declined ones included.
    assert not PaymentIntent.objects.filter(card_last4="").exists()
    assert not declined.filter(card_brand="").exists()
    assert verify.run().violations == []


def test_a_shape_holds_the_outbox_rows_only_when_asked() -> None:
    # given a merchant, when the same shape is recorded with and without them
    merchant = seeding.merchants_for_seed(1)[0]
    with_outbox = seeding.build_shape(merchant, "refunded", "usd")
    without = seeding.build_shape(merchant, "refunded", "usd", outbox=False)

    # then one outbox row per event, or none; everything else the same
    def count(shape: seeding.Shape, model: type) -> int:
        return sum(1 for row in shape.rows if row.model is model)

    assert count(with_outbox, OutboxMessage) == count(with_outbox, Event) > 0
    assert count(without, OutboxMessage) == 0
    assert count(without, Event) == count(with_outbox, Event)
    assert len(without.rows) == len(with_outbox.rows) - count(with_outbox, OutboxMessage)
    # and recording left nothing behind (the services ran in a rolled-back transaction)
    assert not PaymentIntent.objects.exists() and not OutboxMessage.objects.exists()


def _secondary() -> tuple[set[str], set[str]]:
    """Index definitions and foreign keys of the tables the seed writes
    (payments, then the analytics rollups it rebuilds)."""
    from django.db import connection

    from analytics import services as analytics_services

    models = [*seeding.MODELS, *(cube.model for cube in analytics_services.TABLES)]
    tables = [m._meta.db_table for m in models]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = ANY(%s::regclass[])",
            [tables],
        )
        indexes = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype IN ('f', 'u') AND conrelid = ANY(%s::regclass[])",
            [tables],
        )
        foreign_keys = {row[0] for row in cursor.fetchall()}
    return indexes, foreign_keys


@pytest.mark.postgres
def test_a_bulk_seed_rebuilds_every_index_and_foreign_key_it_dropped() -> None:
    # given the indexes and foreign keys as the migrations made them
    before = _secondary()
    assert before[0] and before[1]

    # when a seed runs in bulk mode (drop, load, recreate in one transaction;
    # the same around the rollup rebuild)
    call_command("seed", payments=1500, days=10, merchants=2, seed=2, indexes="rebuild")

    # then they are all back, and the history is consistent
    assert _secondary() == before
    assert PaymentIntent.objects.count() == 1500
    assert verify.run().violations == []


class _Interrupted(Exception):
    pass


@pytest.mark.postgres
def test_a_bulk_seed_that_fails_midway_leaves_the_database_as_it_was() -> None:
    # given a database with its indexes, and a seed that will fail after
    # its first batch was loaded (indexes and foreign keys already dropped)
    before = _secondary()
    merchants = seeding.merchants_for_seed(1)

    def fail_after_first_batch(done: int, total: int) -> None:
        raise _Interrupted

    # when it fails
    with pytest.raises(_Interrupted):
        seeding.payments_seed(
            payments=1000,
            days=5,
            merchants=merchants,
            seed=3,
            batch=200,
            indexes="rebuild",
            progress=fail_after_first_batch,
        )

    # then nothing of it is left: no payment, every index and key back
    assert not PaymentIntent.objects.exists() and not Event.objects.exists()
    assert _secondary() == before
