"""Webhook delivery against a real HTTP receiver started by the test: signed
like Stripe's, retried on the published schedule, every attempt recorded,
endpoints disabled after failing too long, resend, the verify check."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe
from django.test import override_settings
from django.utils import timezone

from accounts.models import Merchant
from config.errors import InvalidRequestError
from payments.models import (
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from payments.models.intents import CaptureMethod
from payments.services import intents, outbox, verify, webhooks
from tests.conftest import MerchantWithKey

READ_TIMEOUT = 0.5


@dataclass
class Receiver:
    """An HTTP server answering from a script: a status code, "timeout"
    (answer later than PayLab's read timeout) or "redirect"; 200 once the
    script is used up. Records what it received."""

    script: list[Any] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self) -> Any:
        return self.script.pop(0) if self.script else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers), body))
            answer = state.answer()
            if answer == "timeout":
                # Held until PayLab has given up (or the test ends).
                state.release.wait(READ_TIMEOUT * 10)
                answer = 200
            if answer == "redirect":
                self.send_response(302)
                self.send_header("Location", state.url + "elsewhere")
                self.end_headers()
                return
            reply = json.dumps({"received": True, "answer": answer}).encode() * (
                200 if answer == 500 else 1
            )
            self.send_response(answer)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            with contextlib.suppress(OSError):  # PayLab gave up reading
                self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def fast_settings() -> Iterator[None]:
    with override_settings(
        PAYLAB_WEBHOOK_RETRY_SCALE=0.001,
        PAYLAB_WEBHOOK_READ_TIMEOUT=READ_TIMEOUT,
        PAYLAB_WEBHOOK_CONNECT_TIMEOUT=1.0,
        PAYLAB_PROFILE="development",
    ):
        yield


def pay(merchant: Merchant, now: datetime | None = None) -> str:
    return intents.payment_intent_create(
        merchant=merchant,
        amount=2_000,
        currency="usd",
        capture_method=CaptureMethod.AUTOMATIC,
        payment_method="pm_card_visa",
        confirm=True,
        now=now,
    ).intent.pk


def publish() -> list[int]:
    return outbox.outbox_publish(relay="test", on_deliveries=lambda _: None).deliveries


def deliver_until_settled(delivery_id: int, start: datetime, limit: int = 20) -> list[str]:
    """Attempt the delivery whenever it is due (a clock moving ahead), until it settles."""
    outcomes = []
    now = start
    for _ in range(limit):
        outcome = webhooks.webhook_deliver(delivery_id=delivery_id, now=now)
        outcomes.append(outcome.status)
        if outcome.status != "retrying":
            return outcomes
        assert outcome.retry_in is not None
        now += timedelta(seconds=outcome.retry_in)
    return outcomes


@pytest.fixture
def endpoint(merchant_a: MerchantWithKey, receiver: Receiver) -> WebhookEndpoint:
    return webhooks.webhook_endpoint_create(
        merchant=merchant_a.merchant,
        url=receiver.url,
        enabled_events=["payment_intent.succeeded"],
    )


@pytest.mark.django_db
def test_delivery_is_signed_so_the_stripe_library_verifies_it(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    intent_id = pay(merchant_a.merchant)
    [delivery_id] = publish()

    outcome = webhooks.webhook_deliver(delivery_id=delivery_id)

    assert outcome.status == "succeeded"
    [(headers, body)] = receiver.received
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], endpoint.secret)
    assert event["type"] == "payment_intent.succeeded"
    assert event["data"]["object"]["id"] == intent_id
    assert event["id"] == WebhookDelivery.objects.get(pk=delivery_id).event_id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_wrong")


@pytest.mark.django_db
def test_500_500_timeout_200_is_four_attempts_of_the_same_event_all_recorded(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    # given a receiver failing three times, once by not answering in time
    receiver.script = [500, 500, "timeout", 200]
    pay(merchant_a.merchant)
    [delivery_id] = publish()

    # when the delivery is attempted whenever due
    outcomes = deliver_until_settled(delivery_id, timezone.now())

    # then four attempts, each of the same event, each on record
    assert outcomes == ["retrying", "retrying", "retrying", "succeeded"]
    ids = {json.loads(body)["id"] for _, body in receiver.received}
    assert len(receiver.received) == 4 and len(ids) == 1
    attempts = list(WebhookAttempt.objects.filter(delivery_id=delivery_id).order_by("number"))
    assert [a.number for a in attempts] == [1, 2, 3, 4]
    assert [a.status_code for a in attempts] == [500, 500, None, 200]
    assert [a.error.split(":")[0] for a in attempts] == ["HTTP 500", "HTTP 500", "timeout", ""]
    assert all(a.request_headers["Stripe-Signature"].startswith("t=") for a in attempts)
    assert len(attempts[0].response_excerpt) == webhooks.RESPONSE_EXCERPT_BYTES
    assert all(a.url == receiver.url for a in attempts)
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.status, delivery.attempts) == ("succeeded", 4)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since is None


@pytest.mark.django_db
def test_retries_follow_the_published_schedule_scaled_by_the_setting(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    receiver.script = [500] * 3
    pay(merchant_a.merchant)
    [delivery_id] = publish()
    now = timezone.now()

    first = webhooks.webhook_deliver(delivery_id=delivery_id, now=now)
    early = webhooks.webhook_deliver(delivery_id=delivery_id, now=now)

    assert first.retry_in == pytest.approx(webhooks.RETRY_SCHEDULE[0] * 0.001)
    assert early.status == "skipped"
    assert len(receiver.received) == 1
    assert sum(webhooks.RETRY_SCHEDULE) / 3600 == pytest.approx(71.6, abs=0.1)


@pytest.mark.django_db
def test_redirects_are_not_followed_and_count_as_failures(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    receiver.script = ["redirect"]
    pay(merchant_a.merchant)
    [delivery_id] = publish()

    outcome = webhooks.webhook_deliver(delivery_id=delivery_id)

    assert outcome.status == "retrying"
    assert len(receiver.received) == 1
    assert WebhookAttempt.objects.get(delivery_id=delivery_id).status_code == 302


@pytest.mark.django_db
def test_a_delivery_exhausting_its_retries_fails_verify_until_resent(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    # given a receiver failing every attempt of the schedule
    receiver.script = [500] * webhooks.MAX_ATTEMPTS
    pay(merchant_a.merchant)
    [delivery_id] = publish()
    with override_settings(PAYLAB_WEBHOOK_DISABLE_AFTER_HOURS=1000):
        outcomes = deliver_until_settled(delivery_id, timezone.now())
    assert outcomes[-1] == "failed" and len(outcomes) == webhooks.MAX_ATTEMPTS
    report = verify.Report()
    webhooks.check_webhook_deliveries(report)
    assert len(report.violations) == 1 and "retries exhausted" in report.violations[0]

    # when the merchant resends it and the receiver is back
    event_id = WebhookDelivery.objects.get(pk=delivery_id).event_id
    resent = webhooks.webhook_resend(
        merchant=merchant_a.merchant, endpoint_id=endpoint.pk, event_id=event_id
    )
    outcome = webhooks.webhook_deliver(delivery_id=delivery_id)

    # then it is delivered with the same event id, and verify is satisfied
    assert resent == [delivery_id] and outcome.status == "succeeded"
    assert json.loads(receiver.received[-1][1])["id"] == event_id
    assert WebhookAttempt.objects.filter(delivery_id=delivery_id).count() == (
        webhooks.MAX_ATTEMPTS + 1
    )
    report = verify.Report()
    webhooks.check_webhook_deliveries(report)
    assert report.ok, report.violations


@pytest.mark.django_db
def test_an_endpoint_failing_for_the_configured_period_is_disabled_and_flagged(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    # given two owed events and a receiver answering 500
    receiver.script = [500] * 10
    pay(merchant_a.merchant)
    pay(merchant_a.merchant)
    first, second = publish()
    now = timezone.now()

    with override_settings(PAYLAB_WEBHOOK_DISABLE_AFTER_HOURS=1):
        # when it fails now, and again more than an hour later
        webhooks.webhook_deliver(delivery_id=first, now=now)
        later = webhooks.webhook_deliver(delivery_id=first, now=now + timedelta(hours=2))

    # then the endpoint is disabled with the reason, and nothing is pending
    assert later.status == "failed"
    endpoint.refresh_from_db()
    assert endpoint.status == "disabled"
    assert "every attempt failed" in endpoint.disabled_reason
    statuses = set(WebhookDelivery.objects.values_list("status", flat=True))
    assert statuses == {"failed"}
    assert webhooks.webhook_deliver(delivery_id=second).status == "skipped"
    # and verify exempts a disabled endpoint: its failure is flagged on it
    report = verify.Report()
    webhooks.check_webhook_deliveries(report)
    assert report.ok


@pytest.mark.django_db
def test_resend_since_a_time_delivers_every_undelivered_subscribed_event(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    # given three successful payments: the first delivered, the next two
    # missed while the endpoint was disabled
    now = timezone.now()
    pay(merchant_a.merchant, now - timedelta(minutes=30))
    [delivered] = publish()
    webhooks.webhook_deliver(delivery_id=delivered)
    webhooks.webhook_endpoint_update(
        merchant=merchant_a.merchant, endpoint_id=endpoint.pk, disabled=True
    )
    pay(merchant_a.merchant, now - timedelta(minutes=20))
    pay(merchant_a.merchant, now - timedelta(minutes=10))
    assert publish() == []
    webhooks.webhook_endpoint_update(
        merchant=merchant_a.merchant, endpoint_id=endpoint.pk, disabled=False
    )

    # when every undelivered event since an hour ago is resent
    resent = webhooks.webhook_resend(
        merchant=merchant_a.merchant, endpoint_id=endpoint.pk, since=now - timedelta(hours=1)
    )
    for delivery_id in resent:
        assert webhooks.webhook_deliver(delivery_id=delivery_id).status == "succeeded"

    # then the two missed successes arrived, and the delivered one not again
    types = [json.loads(body)["type"] for _, body in receiver.received]
    assert types == ["payment_intent.succeeded"] * 3
    assert len({json.loads(body)["id"] for _, body in receiver.received}) == 3
    assert len(resent) == 2


@pytest.mark.django_db
def test_resend_of_another_merchants_event_is_missing(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey, endpoint: WebhookEndpoint
) -> None:
    pay(merchant_b.merchant)
    other = Event.objects.filter(merchant=merchant_b.merchant).first()
    assert other is not None

    with pytest.raises(InvalidRequestError) as raised:
        webhooks.webhook_resend(
            merchant=merchant_a.merchant, endpoint_id=endpoint.pk, event_id=other.pk
        )

    assert raised.value.status == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "http://localhost/hooks",
        "http://10.1.2.3/hooks",
        "http://192.168.0.10/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
        "http://0.0.0.0/hooks",
    ],
)
@pytest.mark.django_db
def test_production_refuses_loopback_private_and_link_local_urls(
    merchant_a: MerchantWithKey, url: str
) -> None:
    with override_settings(PAYLAB_PROFILE="production"), pytest.raises(InvalidRequestError):
        webhooks.webhook_endpoint_create(
            merchant=merchant_a.merchant, url=url, enabled_events=["*"]
        )

    # the development profile allows them
    webhooks.webhook_endpoint_create(merchant=merchant_a.merchant, url=url, enabled_events=["*"])


@pytest.mark.django_db
def test_production_checks_the_url_again_before_each_attempt(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    pay(merchant_a.merchant)
    [delivery_id] = publish()

    with override_settings(PAYLAB_PROFILE="production"):
        outcome = webhooks.webhook_deliver(delivery_id=delivery_id)

    assert outcome.status == "retrying"
    assert receiver.received == []
    assert WebhookAttempt.objects.get(delivery_id=delivery_id).error.startswith("URL refused")


@pytest.mark.django_db
def test_a_delivered_event_is_not_delivered_again(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    pay(merchant_a.merchant)
    [delivery_id] = publish()

    outcomes = [webhooks.webhook_deliver(delivery_id=delivery_id).status for _ in range(2)]

    assert outcomes == ["succeeded", "skipped"]
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_deleting_an_endpoint_fails_its_pending_deliveries(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    pay(merchant_a.merchant)
    [delivery_id] = publish()

    webhooks.webhook_endpoint_delete(merchant=merchant_a.merchant, endpoint_id=endpoint.pk)

    assert webhooks.webhook_deliver(delivery_id=delivery_id).status == "skipped"
    assert WebhookDelivery.objects.get(pk=delivery_id).status == "failed"
    assert receiver.received == []


@pytest.mark.django_db
def test_the_sweep_finds_due_deliveries_only(
    merchant_a: MerchantWithKey, receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    receiver.script = [500]
    pay(merchant_a.merchant)
    pay(merchant_a.merchant)
    first, second = publish()
    now = timezone.now()
    webhooks.webhook_deliver(delivery_id=first, now=now)

    assert webhooks.webhook_deliveries_due(now=now) == [second]
    assert set(webhooks.webhook_deliveries_due(now=now + timedelta(hours=1))) == {first, second}


@pytest.mark.django_db
def test_verify_counts_an_unowed_event_as_a_violation(
    merchant_a: MerchantWithKey, endpoint: WebhookEndpoint
) -> None:
    # given an event published and owed, whose delivery is then lost
    pay(merchant_a.merchant)
    publish()
    report = verify.Report()
    webhooks.check_webhook_deliveries(report)
    assert report.ok and report.checked["webhook deliveries"] == 1

    # (a second endpoint, enabled before the events, that was never owed them
    # — as if the relay had skipped it)
    late = webhooks.webhook_endpoint_create(
        merchant=merchant_a.merchant,
        url="http://127.0.0.1:9/",
        enabled_events=["*"],
        now=timezone.now() - timedelta(hours=1),
    )
    report = verify.Report()
    webhooks.check_webhook_deliveries(report)

    assert not report.ok
    assert all(late.pk in v and "never owed" in v for v in report.violations)


def test_celery_is_configured_not_to_lose_work() -> None:
    from config.celery import app
    from payments import tasks

    # a task is acknowledged only once it has run, and given back when its
    # worker dies; a worker holds one unstarted task at a time
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert tasks.deliver_webhook.acks_late is True
    # the visibility timeout outlasts any task: an attempt's lease and the
    # longest retry a worker holds as an ETA message
    options = app.conf.broker_transport_options
    if app.conf.broker_url.startswith("redis"):
        longest = tasks.WEBHOOK_ETA_MAX_SECONDS + webhooks._lease_seconds()
        assert options["visibility_timeout"] > longest


@pytest.mark.django_db
def test_the_delivery_sweep_leaves_freshly_queued_deliveries_to_their_task(
    merchant_a: MerchantWithKey, endpoint: WebhookEndpoint
) -> None:
    pay(merchant_a.merchant)
    [delivery_id] = publish()
    now = timezone.now()

    assert webhooks.webhook_deliveries_due(now=now, older_than=10) == []
    assert webhooks.webhook_deliveries_due(now=now + timedelta(seconds=11), older_than=10) == [
        delivery_id
    ]


def test_the_published_retry_schedule_is_the_one_applied() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    section = doc.split("### Retry schedule", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (\d+) s \|", section, flags=re.MULTILINE)

    assert [(int(n), int(s)) for n, s in rows] == list(enumerate(webhooks.RETRY_SCHEDULE, start=1))
    assert len(rows) + 1 == webhooks.MAX_ATTEMPTS
