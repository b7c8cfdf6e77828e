"""The payment page names a circuit breaker its attempt opened."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from payments import processing
from payments.services import intents, processors
from tests.conftest import MerchantWithKey, logged_in

pytestmark = pytest.mark.django_db


def test_the_payment_that_opened_a_breaker_says_so(
    merchant_a: MerchantWithKey, operator_user: User, settings: Any
) -> None:
    # Given swift times out on every request, ironbank behind it
    settings.PAYLAB_PROCESSOR_FAULTS = True
    processing.rng.seed(3)
    processors.processors_import(
        document={
            "processors": [
                {"name": "swift", "timeout_rate_bp": 10_000, "soft_decline_rate_bp": 0},
                {"name": "ironbank", "timeout_rate_bp": 0, "unavailable_rate_bp": 0},
            ],
        }
    )
    start = timezone.now()

    # When the fifth timeout in a minute opens swift's breaker
    paid = [
        intents.payment_intent_create(
            merchant=merchant_a.merchant,
            amount=1_000,
            currency="usd",
            payment_method="pm_card_visa",
            confirm=True,
            now=start + timedelta(seconds=second),
        ).intent
        for second in range(5)
    ]

    # Then that payment's page shows the change under its routing, the others' do not
    client = logged_in(operator_user)
    page = client.get(reverse("payments:payment_detail", kwargs={"payment_id": paid[4].id}))
    body = page.content.decode()
    assert page.status_code == 200
    assert "<dt>breaker changes</dt>" in body
    assert "swift: closed → open (5 failures in 5 attempts within 60s)" in body
    earlier = client.get(reverse("payments:payment_detail", kwargs={"payment_id": paid[0].id}))
    assert "breaker changes" not in earlier.content.decode()
