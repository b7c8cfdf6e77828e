"""Random sequences of payment operations keep every invariant of the payments core.

A hypothesis `RuleBasedStateMachine` drives one merchant's payments through
the services — create, confirm with any `pm_card_*` test card (declines and
3-D Secure included), 3DS challenges completed or failed, full and partial
captures, cancels, partial refunds, disputes closed, time passing — and
through the API for retries with a reused `Idempotency-Key`. After every
step it checks:

- every payment equals its rebuild from its events, and `verify` finds
  nothing wrong (ledger balanced, balances match payments, no card numbers);
- refunded ≤ received ≤ amount, and the capturable amount is the whole
  amount exactly while the payment is authorised;
- each payment is in the status a small model of the lifecycle predicts;
- a refused move (a `PayLabError`) changed nothing at all.

Each example runs inside a savepoint that teardown rolls back, so examples
start from an empty merchant and the test database stays clean.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rest_framework.test import APIClient

from accounts import services as accounts
from config.errors import PayLabError
from payments import cards
from payments.models import (
    Charge,
    Dispute,
    Event,
    LedgerTransaction,
    PaymentIntent,
    PaymentMethod,
    Refund,
    ThreeDSChallenge,
)
from payments.models.intents import CaptureMethod
from payments.services import disputes, intents, refunds, verify
from payments.state_machine import Status

PM_CARDS = sorted(cards.PM_CARDS)
CURRENCIES = ["usd", "jpy", "kwd"]
# 50..100,000 minor units; KWD's minimum is 500 (0.500 KWD), so the lower
# branch also makes the refused creations.
AMOUNTS = st.integers(500, 100_000) | st.integers(50, 499)
# Most moves target a payment where they are allowed, to reach deep
# sequences; the rest hit any payment, mostly to be refused.
LEGAL = st.sampled_from([True, True, True, False])
S = Status


def _behaviour(token: str) -> dict[str, Any]:
    return cards.resolve(cards.PM_CARDS[token]).behaviour()


def predicted_status(
    behaviour: dict[str, Any], *, manual: bool, authenticated: bool = False
) -> Status:
    """What confirming with a card of this behaviour must lead to."""
    if behaviour.get("three_ds") in ("required", "required_then_decline") and not authenticated:
        return S.REQUIRES_ACTION
    if behaviour.get("blocked") or behaviour.get("error_code"):
        return S.REQUIRES_PAYMENT_METHOD
    return S.REQUIRES_CAPTURE if manual else S.SUCCEEDED


class PaymentsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Everything this example writes lives in a savepoint undone by teardown().
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        # Merchants are cheap: a fresh one per example; a generous rate
        # limit so the API retries are never throttled.
        self.merchant = accounts.merchant_create(
            name="Stateful", settings={"rate_limit_per_second": 1_000_000}
        )
        secret = accounts.api_key_create(merchant=self.merchant).secret
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        # The model: what each payment's status and money must be.
        self.status: dict[str, Status] = {}
        self.received: dict[str, int] = {}
        self.refunded: dict[str, int] = {}
        # Idempotency keys whose first response was saved: (key, path, params, status, body).
        self.saved_keys: list[tuple[str, str, dict[str, Any], int, bytes]] = []

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # -- helpers ---------------------------------------------------------

    def _world(self) -> dict[str, Any]:
        """Every row of the merchant's payments domain: what a refused move
        must leave exactly as it was (the event log and ledger only grow,
        so their counts say enough)."""
        m = self.merchant
        rows: dict[str, Any] = {
            model.__name__: {
                row["pk"]: row
                for row in model.objects.filter(merchant=m).values(
                    "pk", *(f.attname for f in model._meta.concrete_fields)
                )
            }
            for model in (PaymentIntent, Charge, PaymentMethod, Refund, Dispute)
        }
        rows["ThreeDSChallenge"] = dict(
            ThreeDSChallenge.objects.filter(payment_intent__merchant=m).values_list(
                "token", "status"
            )
        )
        rows["events"] = Event.objects.filter(merchant=m).count()
        rows["ledger"] = LedgerTransaction.objects.filter(merchant=m).count()
        return rows

    def _attempt(self, call: Any) -> Any:
        """Run a service call; a refusal must be a 4xx that changed nothing."""
        before = self._world()
        try:
            return call()
        except PayLabError as error:
            assert 400 <= error.status < 500, error
            assert self._world() == before, f"refused ({error.code}: {error}) but changed data"
            return None

    def _intent(self, intent_id: str) -> PaymentIntent:
        return PaymentIntent.objects.get(pk=intent_id)

    def _track(self, intent_id: str, status: Status, *, received: int | None = None) -> None:
        """Record the status a payment must now be in; reaching `succeeded`
        by a confirmation receives the whole amount, by a capture `received`."""
        if status == S.SUCCEEDED and self.status.get(intent_id) != S.SUCCEEDED:
            self.received[intent_id] = received or self._intent(intent_id).amount
        self.status[intent_id] = status
        self.received.setdefault(intent_id, 0)
        self.refunded.setdefault(intent_id, 0)

    def _pick(self, data: st.DataObject, legal: bool, *statuses: Status) -> str:
        """A payment: with `legal`, one in `statuses` (where the move is
        allowed) if there is one; otherwise any — the refused moves matter
        as much as the allowed ones."""
        fitting = sorted(p for p, status in self.status.items() if status in statuses)
        return data.draw(st.sampled_from(fitting if legal and fitting else sorted(self.status)))

    def _post(self, path: str, params: dict[str, Any], key: str) -> HttpResponse:
        response: HttpResponse = self.client.post(
            path, params, format="json", HTTP_IDEMPOTENCY_KEY=key
        )
        return response

    # -- rules: the services --------------------------------------------

    @initialize(manual=st.booleans(), card=st.sampled_from(PM_CARDS))
    def first_payment(self, manual: bool, card: str) -> None:
        self.create(amount=10_000, currency="usd", manual=manual, card=card)

    @rule(
        amount=AMOUNTS,
        currency=st.sampled_from(CURRENCIES),
        manual=st.booleans(),
        card=st.none() | st.sampled_from(PM_CARDS),
    )
    def create(self, amount: int, currency: str, manual: bool, card: str | None) -> None:
        outcome = self._attempt(
            lambda: intents.payment_intent_create(
                merchant=self.merchant,
                amount=amount,
                currency=currency,
                capture_method=CaptureMethod.MANUAL if manual else CaptureMethod.AUTOMATIC,
                payment_method=card,
                confirm=card is not None,
            )
        )
        if outcome is None:  # below the currency's minimum: nothing created
            assert currency == "kwd" and amount < 500
            return
        expected = (
            predicted_status(_behaviour(card), manual=manual) if card else S.REQUIRES_PAYMENT_METHOD
        )
        self._track(outcome.intent.id, expected)
        declined = card is not None and expected == S.REQUIRES_PAYMENT_METHOD
        assert (outcome.error is not None) == declined

    @precondition(lambda self: bool(self.status))
    @rule(data=st.data(), legal=LEGAL, card=st.sampled_from(PM_CARDS))
    def confirm(self, data: st.DataObject, legal: bool, card: str) -> None:
        payment = self._pick(data, legal, S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION)
        manual = self._intent(payment).capture_method == CaptureMethod.MANUAL
        outcome = self._attempt(
            lambda: intents.payment_intent_confirm(
                merchant=self.merchant, intent_id=payment, payment_method=card
            )
        )
        if outcome is None:
            assert self.status[payment] not in (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION)
            return
        self._track(payment, predicted_status(_behaviour(card), manual=manual))

    @precondition(lambda self: bool(self.status))
    @rule(data=st.data(), legal=LEGAL, succeeded=st.booleans())
    def answer_3ds_challenge(self, data: st.DataObject, legal: bool, succeeded: bool) -> None:
        payment = self._pick(data, legal, S.REQUIRES_ACTION)
        challenge = (
            ThreeDSChallenge.objects.filter(payment_intent_id=payment).order_by("-created").first()
        )
        if challenge is None:
            return
        intent = self._intent(payment)
        pm = intent.payment_method
        result = self._attempt(
            lambda: intents.three_ds_challenge_complete(token=challenge.token, succeeded=succeeded)
        )
        if result is None:
            assert challenge.status != "pending" or self.status[payment] != S.REQUIRES_ACTION
            return
        assert pm is not None
        manual = intent.capture_method == CaptureMethod.MANUAL
        self._track(
            payment,
            predicted_status(pm.behaviour, manual=manual, authenticated=True)
            if succeeded
            else S.REQUIRES_PAYMENT_METHOD,
        )

    @precondition(lambda self: bool(self.status))
    @rule(data=st.data(), legal=LEGAL, percent=st.none() | st.integers(1, 110))
    def capture(self, data: st.DataObject, legal: bool, percent: int | None) -> None:
        payment = self._pick(data, legal, S.REQUIRES_CAPTURE)
        amount = self._intent(payment).amount
        to_capture = None if percent is None else max(1, amount * percent // 100)
        result = self._attempt(
            lambda: intents.payment_intent_capture(
                merchant=self.merchant, intent_id=payment, amount_to_capture=to_capture
            )
        )
        if result is None:
            assert self.status[payment] != S.REQUIRES_CAPTURE or (to_capture or 0) > amount
            return
        self._track(payment, S.SUCCEEDED, received=to_capture or amount)

    @precondition(lambda self: bool(self.status))
    @rule(
        data=st.data(),
        legal=LEGAL,
        reason=st.sampled_from([None, "duplicate", "requested_by_customer", "abandoned"]),
    )
    def cancel(self, data: st.DataObject, legal: bool, reason: str | None) -> None:
        payment = self._pick(
            data,
            legal,
            S.REQUIRES_PAYMENT_METHOD,
            S.REQUIRES_CONFIRMATION,
            S.REQUIRES_ACTION,
            S.REQUIRES_CAPTURE,
        )
        result = self._attempt(
            lambda: intents.payment_intent_cancel(
                merchant=self.merchant, intent_id=payment, cancellation_reason=reason
            )
        )
        if result is None:
            assert self.status[payment] in (S.SUCCEEDED, S.CANCELED, S.PROCESSING)
            return
        assert result.cancellation_reason == (reason or "")
        self._track(payment, S.CANCELED)

    @precondition(lambda self: bool(self.status))
    @rule(data=st.data(), legal=LEGAL, percent=st.none() | st.integers(1, 110))
    def refund(self, data: st.DataObject, legal: bool, percent: int | None) -> None:
        payment = self._pick(data, legal, S.SUCCEEDED)
        intent = self._intent(payment)
        amount = None if percent is None else max(1, intent.amount_received * percent // 100)
        result = self._attempt(
            lambda: refunds.refund_create(
                merchant=self.merchant, payment_intent=payment, amount=amount
            )
        )
        if result is None:
            return
        assert self.status[payment] == S.SUCCEEDED
        self.refunded[payment] += result.amount

    @precondition(lambda self: bool(self.status))
    @rule(data=st.data(), won=st.booleans())
    def close_dispute(self, data: st.DataObject, won: bool) -> None:
        disputed = sorted(
            Dispute.objects.filter(merchant=self.merchant).values_list("id", flat=True)
        )
        if not disputed:
            return
        dispute_id = data.draw(st.sampled_from(disputed))
        self._attempt(
            lambda: disputes.dispute_close(merchant=self.merchant, dispute_id=dispute_id, won=won)
        )

    @precondition(lambda self: bool(self.status))
    @rule(data=st.data())
    def update_metadata(self, data: st.DataObject) -> None:
        payment = self._pick(data, False)
        result = self._attempt(
            lambda: intents.payment_intent_update(
                merchant=self.merchant,
                intent_id=payment,
                fields={},
                metadata={"step": uuid.uuid4().hex[:8]},
            )
        )
        assert result is not None, "metadata may change in every status"

    # -- rules: time passes ---------------------------------------------

    @rule()
    def authorisations_expire(self) -> None:
        intents.payment_intents_expire_authorizations(now=timezone.now() + timedelta(days=8))
        for payment, status in self.status.items():
            if status == S.REQUIRES_CAPTURE:
                self.status[payment] = S.CANCELED

    @rule()
    def challenges_expire(self) -> None:
        intents.three_ds_challenges_expire(now=timezone.now() + timedelta(hours=1))
        for payment, status in self.status.items():
            if status == S.REQUIRES_ACTION:
                self.status[payment] = S.REQUIRES_PAYMENT_METHOD

    @rule()
    def pending_refunds_settle(self) -> None:
        failing = list(
            Refund.objects.filter(
                merchant=self.merchant,
                status=Refund.Status.PENDING,
                charge__payment_method__behaviour__refund_fails=True,
            ).values_list("payment_intent_id", "amount")
        )
        refunds.refunds_settle_due(now=timezone.now() + timedelta(hours=1))
        for payment, amount in failing:
            self.refunded[payment] -= amount
        assert not Refund.objects.filter(merchant=self.merchant, status="pending").exists()

    # -- rules: the API, with Idempotency-Key retries --------------------

    @rule(
        amount=AMOUNTS,
        currency=st.sampled_from(CURRENCIES),
        manual=st.booleans(),
        card=st.sampled_from(PM_CARDS),
    )
    def api_create_retried(self, amount: int, currency: str, manual: bool, card: str) -> None:
        params = {
            "amount": amount,
            "currency": currency,
            "payment_method": card,
            "confirm": True,
            "capture_method": "manual" if manual else "automatic",
        }
        first = self._retried("/v1/payment_intents", params)
        body = json.loads(first.content)
        if first.status_code == 400:
            assert currency == "kwd" and amount < 500
            return
        intent = body["error"]["payment_intent"] if first.status_code == 402 else body
        expected = predicted_status(_behaviour(card), manual=manual)
        assert intent["status"] == expected
        assert first.status_code == (402 if expected == S.REQUIRES_PAYMENT_METHOD else 200)
        self._track(intent["id"], expected)

    @precondition(lambda self: bool(self.status))
    @rule(
        data=st.data(),
        legal=LEGAL,
        action=st.sampled_from(["capture", "cancel", "refund"]),
        percent=st.none() | st.integers(1, 110),
    )
    def api_action_retried(
        self, data: st.DataObject, legal: bool, action: str, percent: int | None
    ) -> None:
        legal_from = {
            "capture": [S.REQUIRES_CAPTURE],
            "cancel": [S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE],
            "refund": [S.SUCCEEDED],
        }[action]
        payment = self._pick(data, legal, *legal_from)
        intent = self._intent(payment)
        part = None if percent is None else max(1, intent.amount * percent // 100)
        if action == "refund":
            path, params = "/v1/refunds", {"payment_intent": payment}
            if part is not None:
                params["amount"] = part
        else:
            path, params = f"/v1/payment_intents/{payment}/{action}", {}
            if action == "capture" and part is not None:
                params["amount_to_capture"] = part
        first = self._retried(path, params)
        if first.status_code != 200:
            assert first.status_code == 400, first.content
            return
        body = json.loads(first.content)
        if action == "refund":
            self.refunded[payment] += body["amount"]
        elif action == "capture":
            self._track(payment, S.SUCCEEDED, received=part or intent.amount)
            assert body["amount_received"] == self.received[payment]
        else:
            self._track(payment, S.CANCELED)

    def _retried(self, path: str, params: dict[str, Any]) -> HttpResponse:
        """POST with a fresh key, then again with the same key: one execution."""
        key = f"key-{uuid.uuid4()}"
        before = self._world()
        first = self._post(path, params, key)
        assert first.status_code in (200, 400, 402), first.content
        after = self._world()
        if first.status_code == 400:
            assert after == before, f"refused but changed data: {first.content!r}"
        second = self._post(path, params, key)
        assert (second.status_code, second.content) == (first.status_code, first.content)
        assert self._world() == after, "a retry executed the request again"
        if first.status_code in (200, 402):
            assert second["Idempotent-Replayed"] == "true"
            self.saved_keys.append((key, path, params, first.status_code, first.content))
        return first

    @precondition(lambda self: bool(self.saved_keys))
    @rule(data=st.data(), different=st.booleans())
    def replay_a_used_key(self, data: st.DataObject, different: bool) -> None:
        """Later, the same key replays the first answer, whatever happened
        since; with other parameters it is an idempotency_error. Neither runs."""
        key, path, params, status, body = data.draw(st.sampled_from(self.saved_keys))
        before = self._world()
        if different:
            response = self._post(path, {**params, "metadata": {"retry": "other"}}, key)
            assert response.status_code == 400
            assert json.loads(response.content)["error"]["type"] == "idempotency_error"
        else:
            response = self._post(path, params, key)
            assert (response.status_code, response.content) == (status, body)
        assert self._world() == before

    # -- invariants -----------------------------------------------------

    @invariant()
    def payments_equal_their_rebuild_from_events(self) -> None:
        for intent in PaymentIntent.objects.filter(merchant=self.merchant):
            events = list(Event.objects.filter(payment_intent=intent).order_by("sequence"))
            assert verify.rebuild_differences(intent, events) == [], intent.id

    @invariant()
    def verify_finds_nothing_wrong(self) -> None:
        report = verify.run()
        assert report.ok, report.violations

    @invariant()
    def money_stays_within_bounds(self) -> None:
        for p in PaymentIntent.objects.filter(merchant=self.merchant):
            assert 0 <= p.amount_refunded <= p.amount_received <= p.amount, p.id
            authorised = p.status == S.REQUIRES_CAPTURE
            assert p.amount_capturable == (p.amount if authorised else 0), p.id
            if p.status != S.SUCCEEDED:
                assert p.amount_received == 0, p.id

    @invariant()
    def payments_are_where_the_model_says(self) -> None:
        stored = dict(
            PaymentIntent.objects.filter(merchant=self.merchant).values_list("id", "status")
        )
        assert stored == self.status
        for p in PaymentIntent.objects.filter(merchant=self.merchant):
            assert p.amount_received == self.received[p.id], p.id
            assert p.amount_refunded == self.refunded[p.id], p.id


@pytest.mark.django_db
def test_random_operation_sequences_keep_every_payment_invariant() -> None:
    run_state_machine_as_test(
        PaymentsMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
