"""Historical seeding through the bulk path leaves every invariant true."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from payments.models import Dispute, Event, OutboxMessage, PaymentIntent, Refund
from payments.services import verify

pytestmark = pytest.mark.django_db


def test_seeding_2000_payments_leaves_verify_passing() -> None:
    call_command("seed", payments=2000, days=30, merchants=2, seed=1, batch=500)

    assert PaymentIntent.objects.count() == 2000
    statuses = set(PaymentIntent.objects.values_list("status", flat=True))
    assert {"succeeded", "requires_payment_method", "canceled"} <= statuses
    assert Refund.objects.exists() and Dispute.objects.exists()
    # history is not news: nothing waits to be pushed or webhooked
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()
    assert OutboxMessage.objects.count() == Event.objects.count()
    report = verify.run()
    assert report.violations == []
    assert report.checked["payments"] == 2000
