"""Routing, failover and circuit breakers through the real confirmation path.

Processors are configured through `processors_import` (a service), the
processors' own faults are switched on per test, and the clock is the
`now` argument of the services.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Merchant
from payments import processing
from payments.models import Event, PaymentIntent, ProcessorBreaker, ProcessorEvent
from payments.services import intents, processors
from tests.conftest import MerchantWithKey


@pytest.fixture
def merchant(merchant_a: MerchantWithKey) -> Merchant:
    return merchant_a.merchant


@pytest.fixture
def faults(settings: Any) -> None:
    settings.PAYLAB_PROCESSOR_FAULTS = True
    processing.rng.seed(7)


def configure(swift_timeouts: int = 10_000) -> None:
    """swift first, ironbank its backup; nothing random but swift's timeouts."""
    quiet = {"soft_decline_rate_bp": 0, "unavailable_rate_bp": 0}
    processors.processors_import(
        document={
            "processors": [
                {"name": "swift", **quiet, "timeout_rate_bp": swift_timeouts},
                {"name": "ironbank", **quiet, "timeout_rate_bp": 0},
            ],
            "rules": [
                {
                    "name": "primary-backup",
                    "position": 1,
                    "targets": [
                        {"processor": "swift", "weight": 100},
                        {"processor": "ironbank", "weight": 0},
                    ],
                }
            ],
        }
    )


def pay(merchant: Merchant, now: datetime, card: str = "pm_card_visa") -> intents.Outcome:
    return intents.payment_intent_create(
        merchant=merchant,
        amount=2_000,
        currency="usd",
        payment_method=card,
        confirm=True,
        now=now,
    )


def paylab_of(intent: PaymentIntent) -> dict[str, Any]:
    assert intent.latest_charge is not None
    return dict(intent.latest_charge.outcome["paylab"])


def test_primary_timing_out_fails_over_to_the_backup_with_both_attempts_on_the_timeline(
    merchant: Merchant, faults: None
) -> None:
    # Given swift times out on every request
    configure(swift_timeouts=10_000)

    # When a payment is confirmed
    outcome = pay(merchant, timezone.now())

    # Then it succeeds on ironbank, and both attempts are on its charge and timeline
    intent = outcome.intent
    assert (intent.status, intent.processor) == ("succeeded", "ironbank")
    attempts = paylab_of(intent)["attempts"]
    assert [(a["processor"], a["result"], a["code"]) for a in attempts] == [
        ("swift", "error", "timeout"),
        ("ironbank", "approved", None),
    ]
    assert paylab_of(intent)["routing"]["rule"] == "primary-backup"
    event = Event.objects.get(payment_intent=intent, type="charge.succeeded")
    assert [a["processor"] for a in event.data["paylab"]["attempts"]] == ["swift", "ironbank"]
    # and the fee is ironbank's
    charge = intent.latest_charge
    assert charge is not None and charge.balance_transaction is not None
    assert charge.balance_transaction.fee == processing.capture_fee(
        processor="ironbank", amount=2_000, currency="usd"
    )


def test_the_breaker_opens_after_the_threshold_and_next_payments_skip_the_processor(
    merchant: Merchant, faults: None
) -> None:
    configure(swift_timeouts=10_000)
    start = timezone.now()

    # When five payments time out on swift within the window
    paid = [pay(merchant, start + timedelta(seconds=second)).intent for second in range(5)]

    # Then its breaker is open, the change is an event naming the payment
    # whose attempt opened it, and that payment's charge says so too
    breaker = ProcessorBreaker.objects.get(processor__name="swift")
    assert breaker.state == "open"
    opened = ProcessorEvent.objects.get(type="paylab.processor.circuit_opened")
    assert (opened.processor, opened.from_state, opened.to_state) == ("swift", "closed", "open")
    assert opened.data == {"payment_intent": paid[4].id}
    changes = paylab_of(paid[4])["breaker_changes"]
    assert [(c["processor"], c["from"], c["to"]) for c in changes] == [("swift", "closed", "open")]
    assert all("breaker_changes" not in paylab_of(p) for p in paid[:4])

    # And the next payment does not even try swift
    intent = pay(merchant, start + timedelta(seconds=6)).intent
    paylab = paylab_of(intent)
    assert [a["processor"] for a in paylab["attempts"]] == ["ironbank"]
    assert {"processor": "swift", "reason": "circuit breaker open"} in paylab["routing"]["skipped"]


def test_a_processor_failing_a_few_percent_at_volume_keeps_its_breaker_closed(
    merchant: Merchant, faults: None
) -> None:
    # Given swift timing out 3 % of its requests (its backup takes those)
    configure(swift_timeouts=300)
    start = timezone.now()
    # When 400 payments go through within a minute, more than 5 of swift's failing
    paid = [pay(merchant, start + timedelta(milliseconds=100 * i)) for i in range(400)]
    timeouts = sum(
        1
        for outcome in paid
        for attempt in paylab_of(outcome.intent)["attempts"]
        if (attempt["processor"], attempt["code"]) == ("swift", "timeout")
    )
    assert timeouts > 5
    # Then swift's breaker stays closed (its failures are ~3 % of its attempts,
    # under the 10 % the breaker needs) and every payment succeeded
    assert ProcessorBreaker.objects.get(processor__name="swift").state == "closed"
    assert all(outcome.intent.status == "succeeded" for outcome in paid)


def test_a_half_open_probe_that_succeeds_closes_the_breaker(
    merchant: Merchant, faults: None
) -> None:
    # Given swift's breaker opened at `start`
    configure(swift_timeouts=10_000)
    start = timezone.now()
    for second in range(5):
        pay(merchant, start + timedelta(seconds=second))
    # …and swift has recovered
    configure(swift_timeouts=0)

    # When the cool-off (30 s) has passed, probes go to swift
    first = pay(merchant, start + timedelta(seconds=40)).intent
    assert paylab_of(first)["attempts"][0] == {
        "processor": "swift",
        "latency_ms": 0,
        "probe": True,
        "result": "approved",
        "code": None,
    }
    assert ProcessorBreaker.objects.get(processor__name="swift").state == "half_open"
    pay(merchant, start + timedelta(seconds=41))

    # Then two successful probes close it, each change recorded
    assert ProcessorBreaker.objects.get(processor__name="swift").state == "closed"
    assert list(
        ProcessorEvent.objects.filter(processor="swift")
        .order_by("id")
        .values_list("type", flat=True)
    ) == [
        "paylab.processor.circuit_opened",
        "paylab.processor.circuit_half_opened",
        "paylab.processor.circuit_closed",
    ]


def test_a_permanent_decline_is_not_retried(merchant: Merchant, faults: None) -> None:
    configure(swift_timeouts=0)

    outcome = pay(merchant, timezone.now(), card="pm_card_visa_chargeDeclinedInsufficientFunds")

    assert outcome.error is not None and outcome.error.decline_code == "insufficient_funds"
    attempts = paylab_of(outcome.intent)["attempts"]
    assert [(a["processor"], a["result"]) for a in attempts] == [("swift", "declined")]


def test_operators_force_open_and_reset_a_breaker(merchant: Merchant) -> None:
    configure(swift_timeouts=0)

    processors.processor_breaker_force_open(name="swift")
    skipped = paylab_of(pay(merchant, timezone.now()).intent)["routing"]["skipped"]
    assert {"processor": "swift", "reason": "circuit breaker open"} in skipped

    processors.processor_breaker_reset(name="swift")
    assert pay(merchant, timezone.now()).intent.processor == "swift"
    assert list(
        ProcessorEvent.objects.filter(processor="swift")
        .order_by("id")
        .values_list("type", flat=True)
    ) == ["paylab.processor.circuit_opened", "paylab.processor.circuit_closed"]


def test_a_scheduled_outage_sends_traffic_to_the_backup_until_it_ends(merchant: Merchant) -> None:
    configure(swift_timeouts=0)
    now = timezone.now()
    processors.processor_outage_schedule(
        name="swift", starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(minutes=5)
    )

    intent = pay(merchant, now).intent
    attempts = paylab_of(intent)["attempts"]
    assert [(a["processor"], a["code"], a.get("cause")) for a in attempts] == [
        ("swift", "processor_unavailable", "scheduled outage"),
        ("ironbank", None, None),
    ]
    assert pay(merchant, now + timedelta(minutes=6)).intent.processor == "swift"


def test_with_no_candidate_left_the_payment_fails_with_processing_error(
    merchant: Merchant, faults: None
) -> None:
    configure(swift_timeouts=10_000)
    processors.processor_breaker_force_open(name="ironbank")

    outcome = pay(merchant, timezone.now())

    assert outcome.error is not None and outcome.error.code == "processing_error"
    assert outcome.intent.status == "requires_payment_method"
