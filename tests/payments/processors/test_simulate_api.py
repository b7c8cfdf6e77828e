"""`PayLab-Simulate` over the API, waiting confirmations, UPI settlement.

Each directive does what it says; a confirmation that waits on its processor
answers with the final status after passing through `processing`, keeps
Idempotency-Key semantics across its two transactions, and is completed by
the sweep if its request never comes back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from payments import tasks
from payments.models import Event, PaymentIntent, PendingAuthorization, Refund
from payments.services import confirmations, intents, payment_methods, processors, refunds
from tests.conftest import MerchantWithKey

pytestmark = pytest.mark.django_db


def create(
    merchant: MerchantWithKey, simulate: str | None = None, **extra: Any
) -> tuple[int, dict[str, Any]]:
    headers = {"HTTP_PAYLAB_SIMULATE": simulate} if simulate else {}
    body = {
        "amount": 2000,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
        **extra,
    }
    response = merchant.api().post("/v1/payment_intents", body, format="json", **headers)
    return response.status_code, response.json()


def timeline(intent_id: str) -> list[str]:
    return list(
        Event.objects.filter(payment_intent_id=intent_id)
        .order_by("sequence", "id")
        .values_list("type", flat=True)
    )


def charge_of(merchant: MerchantWithKey, intent: dict[str, Any]) -> dict[str, Any]:
    return merchant.api().get(f"/v1/charges/{intent['latest_charge']}").json()


def test_decline_forces_the_decline_whatever_the_card(merchant_a: MerchantWithKey) -> None:
    status, body = create(merchant_a, "decline=insufficient_funds")

    assert status == 402
    assert body["error"]["decline_code"] == "insufficient_funds"
    charge = charge_of(merchant_a, body["error"]["payment_intent"])
    assert charge["paylab"]["simulate"] == "decline=insufficient_funds"


def test_metadata_carries_the_same_grammar(merchant_a: MerchantWithKey) -> None:
    status, body = create(merchant_a, metadata={"paylab_simulate": "decline=lost_card"})

    assert status == 402 and body["error"]["decline_code"] == "lost_card"


def test_latency_waits_outside_the_transaction_and_answers_the_final_status(
    merchant_a: MerchantWithKey,
) -> None:
    status, body = create(merchant_a, "latency=30ms")

    assert (status, body["status"]) == (200, "succeeded")
    assert timeline(body["id"]) == [
        "payment_intent.created",
        "payment_intent.processing",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    assert charge_of(merchant_a, body)["paylab"]["attempts"][0]["latency_ms"] == 30
    assert not PendingAuthorization.objects.exists()


def test_a_waiting_confirmation_keeps_idempotency(merchant_a: MerchantWithKey) -> None:
    api = merchant_a.api()
    body = {"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    headers = {"HTTP_PAYLAB_SIMULATE": "latency=20ms", "HTTP_IDEMPOTENCY_KEY": "order-42"}

    first = api.post("/v1/payment_intents", body, format="json", **headers)
    again = api.post("/v1/payment_intents", body, format="json", **headers)

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert PaymentIntent.objects.count() == 1


def test_processor_error_fails_over(merchant_a: MerchantWithKey) -> None:
    status, body = create(merchant_a, "processor_error=timeout")

    assert (status, body["status"]) == (200, "succeeded")
    attempts = charge_of(merchant_a, body)["paylab"]["attempts"]
    assert [a["result"] for a in attempts] == ["error", "approved"]
    assert attempts[0]["code"] == "timeout" and attempts[0]["cause"] == "PayLab-Simulate"


def test_processor_routes_to_the_named_processor(merchant_a: MerchantWithKey) -> None:
    status, body = create(merchant_a, "processor=ironbank")

    assert status == 200
    routing = charge_of(merchant_a, body)["paylab"]["routing"]
    assert routing["rule"] == "PayLab-Simulate processor="
    assert routing["candidates"] == ["ironbank"]


def test_http_answers_that_status_and_does_nothing(merchant_a: MerchantWithKey) -> None:
    status, body = create(merchant_a, "http=503")

    assert status == 503
    assert body["error"]["type"] == "api_error"
    assert PaymentIntent.objects.count() == 0


def test_at_capture_fails_the_capture_and_records_it(merchant_a: MerchantWithKey) -> None:
    # Given an authorisation
    _, intent = create(merchant_a, capture_method="manual")
    assert intent["status"] == "requires_capture"

    # When its capture is simulated to be declined
    response = merchant_a.api().post(
        f"/v1/payment_intents/{intent['id']}/capture",
        {},
        format="json",
        HTTP_PAYLAB_SIMULATE="decline=do_not_honor; at=capture",
    )

    # Then it is a 402, the payment is still capturable, the attempt recorded
    assert response.status_code == 402
    assert response.json()["error"]["decline_code"] == "do_not_honor"
    assert PaymentIntent.objects.get(pk=intent["id"]).status == "requires_capture"
    assert timeline(intent["id"])[-1] == "charge.updated"
    capture_attempts = charge_of(merchant_a, intent)["paylab"]["capture_attempts"]
    assert capture_attempts[0]["code"] == "do_not_honor"


def test_at_capture_leaves_the_confirmation_alone(merchant_a: MerchantWithKey) -> None:
    status, body = create(merchant_a, "decline=lost_card; at=capture")

    assert (status, body["status"]) == (200, "succeeded")


def test_at_refund_accepts_the_refund_then_fails_it_and_returns_the_money(
    merchant_a: MerchantWithKey,
) -> None:
    # Given a captured payment
    _, intent = create(merchant_a)
    balance_before = merchant_a.api().get("/v1/balance").json()

    # When a partial refund is simulated to fail at the processor
    response = merchant_a.api().post(
        "/v1/refunds",
        {"payment_intent": intent["id"], "amount": 500},
        format="json",
        HTTP_PAYLAB_SIMULATE="processor_error=processor_unavailable; at=refund",
    )

    # Then it is accepted as pending, with no failure reason shown yet
    assert response.status_code == 200
    refund = response.json()
    assert (refund["status"], refund["failure_reason"]) == ("pending", None)

    # And when it settles it fails with the directive's code, the money back
    refunds.refund_settle(refund_id=refund["id"], now=timezone.now() + timedelta(seconds=10))
    settled = merchant_a.api().get(f"/v1/refunds/{refund['id']}").json()
    assert (settled["status"], settled["failure_reason"]) == ("failed", "processor_unavailable")
    assert PaymentIntent.objects.get(pk=intent["id"]).amount_refunded == 0
    assert merchant_a.api().get("/v1/balance").json()["available"] == balance_before["available"]
    assert timeline(intent["id"])[-2:] == ["refund.failed", "charge.refund.updated"]


def test_at_refund_http_answers_that_status_and_refunds_nothing(
    merchant_a: MerchantWithKey,
) -> None:
    _, intent = create(merchant_a)

    response = merchant_a.api().post(
        "/v1/refunds",
        {"payment_intent": intent["id"]},
        format="json",
        HTTP_PAYLAB_SIMULATE="http=502; at=refund",
    )

    assert response.status_code == 502
    assert Refund.objects.count() == 0
    assert PaymentIntent.objects.get(pk=intent["id"]).amount_refunded == 0


def test_a_refund_without_the_directive_at_refund_succeeds(merchant_a: MerchantWithKey) -> None:
    _, intent = create(merchant_a, metadata={"paylab_simulate": "decline=lost_card; at=capture"})

    response = merchant_a.api().post("/v1/refunds", {"payment_intent": intent["id"]}, format="json")

    assert response.json()["status"] == "succeeded"


@pytest.mark.parametrize(
    ("header", "fragment"),
    [("latency=soon", "latency must look like"), ("colour=blue", "unknown directive")],
)
def test_a_malformed_directive_is_a_400_naming_the_header(
    merchant_a: MerchantWithKey, header: str, fragment: str
) -> None:
    status, body = create(merchant_a, header)

    assert status == 400
    assert body["error"]["param"] == "PayLab-Simulate"
    assert fragment in body["error"]["message"]
    assert PaymentIntent.objects.count() == 0


def test_the_sweep_completes_a_confirmation_whose_request_died(
    merchant_a: MerchantWithKey,
) -> None:
    # Given phase one committed (the payment is processing, its outcome recorded)…
    now = timezone.now()
    outcome = intents.payment_intent_create(
        merchant=merchant_a.merchant,
        amount=2_000,
        currency="usd",
        payment_method="pm_card_visa",
        confirm=True,
        simulate="latency=1s",
        defer=True,
        now=now,
    )
    assert (outcome.intent.status, outcome.pending_ms) == ("processing", 1000)

    # When the request never comes back and the sweep runs past the grace period
    settled = confirmations.pending_authorizations_settle(
        now=now + timedelta(seconds=40), grace_seconds=30
    )

    # Then the recorded outcome is applied
    assert settled == 1
    assert PaymentIntent.objects.get(pk=outcome.intent.id).status == "succeeded"


@pytest.mark.parametrize(
    ("vpa", "final", "last_event"),
    [
        ("success@paylab", "succeeded", "payment_intent.succeeded"),
        ("failure@paylab", "requires_payment_method", "payment_intent.payment_failed"),
    ],
)
def test_upi_goes_processing_then_settles_through_the_task(
    merchant_a: MerchantWithKey, vpa: str, final: str, last_event: str
) -> None:
    # Given a UPI payment confirmed a minute ago (its settlement is due)
    merchant = merchant_a.merchant
    pm = payment_methods.payment_method_create(merchant=merchant, type="upi", data={"vpa": vpa})
    outcome = intents.payment_intent_create(
        merchant=merchant,
        amount=50_000,
        currency="inr",
        payment_method=pm.id,
        confirm=True,
        now=timezone.now() - timedelta(minutes=1),
    )
    assert outcome.intent.status == "processing"
    assert outcome.intent.processor == "monsoon"

    # When the scheduled settlement task runs
    assert tasks.settle_pending_authorization(outcome.intent.id) is True

    # Then it settled, with its events
    intent = PaymentIntent.objects.get(pk=outcome.intent.id)
    assert intent.status == final
    events = timeline(intent.id)
    assert events[:3] == ["payment_intent.created", "charge.pending", "payment_intent.processing"]
    assert events[-1] == last_event
    # and running it again changes nothing
    assert tasks.settle_pending_authorization(intent.id) is False


def test_a_slow_upi_payment_is_not_settled_before_it_is_due(merchant_a: MerchantWithKey) -> None:
    merchant = merchant_a.merchant
    pm = payment_methods.payment_method_create(
        merchant=merchant, type="upi", data={"vpa": "slow@paylab"}
    )
    outcome = intents.payment_intent_create(
        merchant=merchant, amount=50_000, currency="inr", payment_method=pm.id, confirm=True
    )

    assert tasks.settle_pending_authorization(outcome.intent.id) is False
    assert PaymentIntent.objects.get(pk=outcome.intent.id).status == "processing"


def test_a_wallet_payment_settles_synchronously(merchant_a: MerchantWithKey) -> None:
    merchant = merchant_a.merchant
    pm = payment_methods.payment_method_create(
        merchant=merchant, type="wallet", data={"type": "paylab_wallet"}
    )
    outcome = intents.payment_intent_create(
        merchant=merchant, amount=1_500, currency="usd", payment_method=pm.id, confirm=True
    )

    assert outcome.intent.status == "succeeded"
    assert outcome.intent.processor in ("swift", "ironbank")


def test_processors_export_and_import_round_trip() -> None:
    document = processors.processors_export()
    assert [p["name"] for p in document["processors"]] == ["swift", "ironbank", "monsoon"]

    document["processors"][0]["latency_p50_ms"] = 5
    document["processors"][0]["latency_p99_ms"] = 9
    processors.processors_import(document=document)

    assert processors.processors_export() == document
