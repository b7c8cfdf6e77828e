"""Payment intents through the services: the lifecycle, and the event log it appends."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import transaction

from accounts.models import Merchant
from config.errors import CardError, InvalidRequestError, PayLabError
from payments.models import Charge, Event, LedgerTransaction, PaymentIntent, ThreeDSChallenge
from payments.models.events import AppendOnlyError
from payments.models.intents import CaptureMethod
from payments.services import intents, refunds, verify
from payments.services.verify import rebuild_differences
from payments.state_machine import Status
from tests.conftest import MerchantWithKey
from tests.payments.services.conftest import Pay


def _events(intent: PaymentIntent) -> list[Event]:
    return list(Event.objects.filter(payment_intent=intent).order_by("sequence"))


def _fresh(intent: PaymentIntent) -> PaymentIntent:
    return PaymentIntent.objects.get(pk=intent.pk)


def _state(intent: PaymentIntent) -> dict[str, Any]:
    intent = _fresh(intent)
    return {
        "status": intent.status,
        "version": intent.version,
        "amount_capturable": intent.amount_capturable,
        "amount_received": intent.amount_received,
        "amount_refunded": intent.amount_refunded,
        "events": len(_events(intent)),
        "ledger": LedgerTransaction.objects.filter(payment_intent=intent).count(),
    }


def test_create_without_a_payment_method_requires_one_and_records_creation(
    merchant: Merchant, now: datetime
) -> None:
    outcome = intents.payment_intent_create(
        merchant=merchant, amount=2_000, currency="USD", now=now
    )

    intent = _fresh(outcome.intent)
    assert outcome.error is None
    assert intent.id.startswith("pi_")
    assert intent.status == Status.REQUIRES_PAYMENT_METHOD
    assert (intent.amount, intent.currency) == (2_000, "usd")
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    [created] = _events(intent)
    assert (created.sequence, created.type) == (1, "payment_intent.created")
    assert (created.from_status, created.to_status) == ("", Status.REQUIRES_PAYMENT_METHOD)
    assert created.delta == {"amount": 2_000}
    assert created.data["id"] == intent.id


def test_create_with_a_payment_method_requires_confirmation(
    merchant: Merchant, now: datetime
) -> None:
    outcome = intents.payment_intent_create(
        merchant=merchant, amount=2_000, currency="usd", payment_method="pm_card_visa", now=now
    )

    assert _fresh(outcome.intent).status == Status.REQUIRES_CONFIRMATION


@pytest.mark.parametrize(
    ("currency", "amount", "code"),
    [
        ("usd", 49, "amount_too_small"),
        ("kwd", 499, "amount_too_small"),
        ("usd", 10**8, "amount_too_large"),
    ],
)
def test_create_refuses_an_amount_out_of_range_and_saves_nothing(
    merchant: Merchant, currency: str, amount: int, code: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        intents.payment_intent_create(merchant=merchant, amount=amount, currency=currency)

    assert (raised.value.code, raised.value.param) == (code, "amount")
    assert not PaymentIntent.objects.filter(merchant=merchant).exists()


def test_confirm_with_automatic_capture_succeeds_and_captures_the_amount(
    merchant: Merchant, now: datetime
) -> None:
    # Given a payment waiting for its payment method
    created = intents.payment_intent_create(
        merchant=merchant, amount=5_000, currency="usd", capture_method="automatic", now=now
    ).intent

    # When it is confirmed with the Visa success card
    outcome = intents.payment_intent_confirm(
        merchant=merchant, intent_id=created.id, payment_method="pm_card_visa", now=now
    )

    # Then it succeeded, with its charge captured in full
    intent = _fresh(created)
    assert outcome.error is None
    assert intent.status == Status.SUCCEEDED
    assert (intent.amount_received, intent.amount_capturable) == (5_000, 0)
    charge = Charge.objects.get(pk=intent.latest_charge_id)
    assert (charge.status, charge.captured, charge.amount_captured) == ("succeeded", True, 5_000)
    assert [e.type for e in _events(intent)] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]


def test_confirm_with_manual_capture_authorises_for_seven_days(pay: Pay, now: datetime) -> None:
    intent = pay(manual=True, amount=5_000)

    assert intent.status == Status.REQUIRES_CAPTURE
    assert (intent.amount_capturable, intent.amount_received) == (5_000, 0)
    assert intent.authorization_expires_at == now + timedelta(days=7)
    assert not LedgerTransaction.objects.filter(payment_intent=intent).exists()


def test_full_capture_receives_the_whole_authorisation(merchant: Merchant, pay: Pay) -> None:
    intent = pay(manual=True, amount=5_000)

    intents.payment_intent_capture(merchant=merchant, intent_id=intent.id)

    intent = _fresh(intent)
    assert intent.status == Status.SUCCEEDED
    assert (intent.amount_received, intent.amount_capturable) == (5_000, 0)
    assert intent.authorization_expires_at is None
    assert _events(intent)[-2].type == "charge.captured"


def test_partial_capture_receives_part_and_releases_the_rest(merchant: Merchant, pay: Pay) -> None:
    intent = pay(manual=True, amount=5_000)

    intents.payment_intent_capture(merchant=merchant, intent_id=intent.id, amount_to_capture=1_200)

    intent = _fresh(intent)
    assert intent.status == Status.SUCCEEDED
    assert (intent.amount, intent.amount_received, intent.amount_capturable) == (5_000, 1_200, 0)
    charge = Charge.objects.get(pk=intent.latest_charge_id)
    assert charge.amount_captured == 1_200
    [txn] = LedgerTransaction.objects.filter(payment_intent=intent)
    assert txn.amount == 1_200


@pytest.mark.parametrize("amount_to_capture", [0, 5_001])
def test_capture_outside_the_capturable_amount_is_refused_and_changes_nothing(
    merchant: Merchant, pay: Pay, amount_to_capture: int
) -> None:
    intent = pay(manual=True, amount=5_000)
    before = _state(intent)

    with pytest.raises(InvalidRequestError) as raised:
        intents.payment_intent_capture(
            merchant=merchant, intent_id=intent.id, amount_to_capture=amount_to_capture
        )

    assert raised.value.param == "amount_to_capture"
    assert _state(intent) == before


@pytest.mark.parametrize("manual", [True, False])
def test_cancel_voids_an_uncaptured_payment_but_not_a_succeeded_one(
    merchant: Merchant, pay: Pay, manual: bool
) -> None:
    intent = pay(manual=manual)
    before = _state(intent)

    if not manual:
        with pytest.raises(PayLabError) as raised:
            intents.payment_intent_cancel(merchant=merchant, intent_id=intent.id)
        assert (raised.value.status, raised.value.code) == (400, "payment_intent_unexpected_state")
        assert "status is succeeded" in raised.value.message
        assert _state(intent) == before
        return

    intents.payment_intent_cancel(
        merchant=merchant, intent_id=intent.id, cancellation_reason="requested_by_customer"
    )
    intent = _fresh(intent)
    assert intent.status == Status.CANCELED
    assert intent.cancellation_reason == "requested_by_customer"
    assert intent.amount_capturable == 0
    assert intent.canceled_at is not None


def test_capture_of_a_canceled_payment_is_a_400_naming_its_status(
    merchant: Merchant, pay: Pay
) -> None:
    intent = pay(manual=True)
    intents.payment_intent_cancel(merchant=merchant, intent_id=intent.id)
    before = _state(intent)

    with pytest.raises(PayLabError) as raised:
        intents.payment_intent_capture(merchant=merchant, intent_id=intent.id)

    assert raised.value.status == 400
    assert "status is canceled" in raised.value.message
    assert _state(intent) == before


def test_another_merchants_payment_is_missing(merchant_b: MerchantWithKey, pay: Pay) -> None:
    intent = pay(manual=True)
    before = _state(intent)

    with pytest.raises(PayLabError) as raised:
        intents.payment_intent_capture(merchant=merchant_b.merchant, intent_id=intent.id)

    assert (raised.value.status, raised.value.code) == (404, "resource_missing")
    assert _state(intent) == before


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("pm_card_visa_chargeDeclined", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_visa_chargeDeclinedLostCard", "lost_card"),
    ],
)
def test_a_decline_returns_to_requires_payment_method_and_the_same_intent_can_retry(
    merchant: Merchant, now: datetime, card: str, decline_code: str
) -> None:
    # Given a payment declined by the issuer
    outcome = intents.payment_intent_create(
        merchant=merchant, amount=3_000, currency="usd", payment_method=card, confirm=True, now=now
    )
    assert isinstance(outcome.error, CardError)
    assert outcome.error.decline_code == decline_code
    declined = _fresh(outcome.intent)
    assert declined.status == Status.REQUIRES_PAYMENT_METHOD
    assert declined.last_payment_error is not None
    assert declined.last_payment_error["decline_code"] == decline_code
    assert declined.payment_method_id is None
    assert not LedgerTransaction.objects.filter(payment_intent=declined).exists()

    # When it is confirmed again with a good card
    retry = intents.payment_intent_confirm(
        merchant=merchant, intent_id=declined.id, payment_method="pm_card_visa", now=now
    )

    # Then the same intent succeeds, with a second charge
    intent = _fresh(declined)
    assert retry.error is None
    assert intent.status == Status.SUCCEEDED
    assert intent.last_payment_error is None
    assert Charge.objects.filter(payment_intent=intent).count() == 2


def test_a_3ds_card_requires_action_and_completing_the_challenge_succeeds(
    merchant: Merchant, pay: Pay
) -> None:
    intent = pay("pm_card_threeDSecure2Required")
    assert intent.status == Status.REQUIRES_ACTION
    assert intent.next_action is not None
    url = intent.next_action["redirect_to_url"]["url"]
    challenge = ThreeDSChallenge.objects.get(payment_intent=intent)
    assert url.endswith(f"/hosted/3ds/{challenge.token}/")

    intents.three_ds_challenge_complete(token=challenge.token, succeeded=True)

    intent = _fresh(intent)
    assert intent.status == Status.SUCCEEDED
    assert intent.next_action is None
    assert ThreeDSChallenge.objects.get(pk=challenge.token).status == "succeeded"


def test_failing_the_3ds_challenge_leaves_requires_payment_method(pay: Pay) -> None:
    intent = pay("pm_card_threeDSecureRequired")
    challenge = ThreeDSChallenge.objects.get(payment_intent=intent)

    intents.three_ds_challenge_complete(token=challenge.token, succeeded=False)

    intent = _fresh(intent)
    assert intent.status == Status.REQUIRES_PAYMENT_METHOD
    assert intent.last_payment_error is not None
    assert intent.last_payment_error["code"] == "payment_intent_authentication_failure"
    with pytest.raises(InvalidRequestError):
        intents.three_ds_challenge_complete(token=challenge.token, succeeded=True)


def test_update_before_confirmation_changes_fields_and_after_only_metadata(
    merchant: Merchant, pay: Pay, now: datetime
) -> None:
    draft = intents.payment_intent_create(merchant=merchant, amount=1_000, currency="usd").intent
    intents.payment_intent_update(merchant=merchant, intent_id=draft.id, fields={"amount": 1_500})
    assert _fresh(draft).amount == 1_500

    settled = pay()
    before = _state(settled)
    with pytest.raises(PayLabError):
        intents.payment_intent_update(merchant=merchant, intent_id=settled.id, fields={"amount": 1})
    assert _state(settled) == before

    intents.payment_intent_update(
        merchant=merchant, intent_id=settled.id, fields={}, metadata={"order": "42"}
    )
    settled = _fresh(settled)
    assert settled.metadata == {"order": "42"}
    assert settled.status == Status.SUCCEEDED
    assert rebuild_differences(settled, _events(settled)) == []


Step = Callable[[Merchant, PaymentIntent], object]

# A walk through most of the lifecycle; every step is one or more transitions.
WALK: list[tuple[str, Step, list[Status]]] = [
    (
        "update",
        lambda m, i: intents.payment_intent_update(
            merchant=m, intent_id=i.id, fields={"description": "Order 7"}
        ),
        [Status.REQUIRES_PAYMENT_METHOD],
    ),
    (
        "attach",
        lambda m, i: intents.payment_intent_update(
            merchant=m, intent_id=i.id, fields={}, payment_method="pm_card_chargeDeclined"
        ),
        [Status.REQUIRES_CONFIRMATION],
    ),
    (
        "confirm (declined)",
        lambda m, i: intents.payment_intent_confirm(merchant=m, intent_id=i.id),
        [Status.REQUIRES_PAYMENT_METHOD],
    ),
    (
        "confirm (3DS)",
        lambda m, i: intents.payment_intent_confirm(
            merchant=m, intent_id=i.id, payment_method="pm_card_threeDSecure2Required"
        ),
        [Status.REQUIRES_ACTION],
    ),
    (
        "challenge",
        lambda m, i: intents.three_ds_challenge_complete(
            token=ThreeDSChallenge.objects.get(payment_intent=i, status="pending").token,
            succeeded=True,
        ),
        [Status.REQUIRES_CAPTURE],
    ),
    (
        "partial capture",
        lambda m, i: intents.payment_intent_capture(
            merchant=m, intent_id=i.id, amount_to_capture=6_000
        ),
        [Status.SUCCEEDED],
    ),
    (
        "refund",
        lambda m, i: refunds.refund_create(merchant=m, payment_intent=i.id, amount=2_500),
        [Status.SUCCEEDED],
    ),
    (
        "second refund",
        lambda m, i: refunds.refund_create(merchant=m, payment_intent=i.id),
        [Status.SUCCEEDED],
    ),
]


def test_every_transition_appends_one_status_event_first_and_the_sequence_is_1_to_n(
    merchant: Merchant,
) -> None:
    intent = intents.payment_intent_create(
        merchant=merchant, amount=10_000, currency="usd", capture_method=CaptureMethod.MANUAL
    ).intent
    seen = len(_events(intent))

    for name, step, expected in WALK:
        before = _fresh(intent)
        step(merchant, intent)

        after = _fresh(intent)
        new = _events(after)[seen:]
        seen += len(new)
        # One status-carrying event per transition, each opening its group,
        # and the groups chain from the status before to the status after.
        carriers = [e for e in new if e.to_status]
        assert [e.to_status for e in carriers] == expected, name
        assert new[0].to_status, name
        assert carriers[0].from_status == before.status, name
        for previous, current in itertools.pairwise(carriers):
            assert current.from_status == previous.to_status, name
        assert all(not e.from_status for e in new if not e.to_status), name
        assert after.version == before.version + len(carriers), name
        assert after.status == expected[-1], name

    events = _events(intent)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert _fresh(intent).event_sequence == len(events)
    assert rebuild_differences(_fresh(intent), events) == []
    assert verify.run().ok


@pytest.fixture
def logged(pay: Pay) -> Event:
    return _events(pay())[-1]


def test_the_event_log_refuses_queryset_update(logged: Event) -> None:
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(pk=logged.pk).update(type="payment_intent.canceled")
    assert Event.objects.get(pk=logged.pk).type == logged.type


def test_the_event_log_refuses_queryset_delete(logged: Event) -> None:
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(pk=logged.pk).delete()
    with pytest.raises(AppendOnlyError):
        logged.payment_intent.events.all().delete()  # type: ignore[union-attr]
    assert Event.objects.filter(pk=logged.pk).exists()


def test_the_event_log_refuses_saving_or_deleting_an_existing_event(logged: Event) -> None:
    event = Event.objects.get(pk=logged.pk)
    event.data = {"tampered": True}

    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.save(update_fields=["data"])
    # bulk_update opens its own atomic block; a savepoint keeps the test's usable.
    with pytest.raises(AppendOnlyError), transaction.atomic():
        Event.objects.bulk_update([event], ["data"])
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert Event.objects.get(pk=logged.pk).data == logged.data
