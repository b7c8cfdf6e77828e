"""The live feed and the webhooks pages: full page and partial, tenancy,
and resending a delivery (an operator action; viewers are refused)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.test import override_settings
from django.urls import reverse

from accounts.models import Merchant, User
from payments import ids
from payments.models import Event, WebhookDelivery
from payments.services import outbox, webhooks
from tests.conftest import MerchantWithKey, logged_in
from tests.payments.dashboard.conftest import htmx, pay

pytestmark = pytest.mark.django_db

FEED = "/live/"
WEBHOOKS = "/webhooks/"


@pytest.fixture(autouse=True)
def relay_driven_by_the_test() -> Iterator[None]:
    with override_settings(PAYLAB_RELAY_IN_WEB=False):
        yield


def deliveries_for(merchant: Merchant) -> list[WebhookDelivery]:
    """An endpoint that wants everything, a payment, and the relay's pass:
    one pending delivery per event (no worker runs, so none is attempted)."""
    webhooks.webhook_endpoint_create(
        merchant=merchant, url="http://127.0.0.1:9/hooks", enabled_events=["*"]
    )
    pay(merchant)
    outbox.outbox_publish(relay="test", on_deliveries=lambda _: None)
    return list(WebhookDelivery.objects.filter(merchant_id=merchant.pk).order_by("pk"))


def delivery_url(delivery: WebhookDelivery, resend: bool = False) -> str:
    name = "payments:webhook_delivery_resend" if resend else "payments:webhook_delivery"
    return reverse(name, kwargs={"delivery_id": delivery.pk})


# --- Live feed -----------------------------------------------------------------


def test_the_live_feed_full_page_and_partial(
    merchant_a: MerchantWithKey, operator_user: User
) -> None:
    intent = pay(merchant_a.merchant)
    client = logged_in(operator_user)
    page = client.get(FEED).content.decode()
    assert 'id="feed-filters"' in page and 'data-feed-ws="/ws/events/"' in page
    assert intent.id in page and "payment_intent.succeeded" in page
    partial = client.get(
        FEED, {"merchant": merchant_a.merchant.pk}, **htmx("live-feed")
    ).content.decode()
    assert partial.lstrip().startswith('<section id="live-feed"') and "<html" not in partial
    assert f'data-feed-ws="/ws/events/?merchant={merchant_a.merchant.pk}"' in partial


def test_the_first_paint_keeps_a_payments_events_in_order_within_a_millisecond(
    merchant_a: MerchantWithKey, operator_user: User
) -> None:
    # One clock reading for three payments: every id shares its
    # millisecond, and only the random parts would order them.
    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    intents = [pay(merchant_a.merchant, now=now) for _ in range(3)]
    page = logged_in(operator_user).get(FEED).content.decode()
    shown = re.findall(r'data-event-id="([^"]+)"', page)
    for intent in intents:
        events = Event.objects.filter(payment_intent=intent)
        assert len({ids.created_part(e) for e in events.values_list("id", flat=True)}) == 1
        expected = list(events.order_by("-sequence").values_list("id", flat=True))
        assert len(expected) >= 3
        assert [e for e in shown if e in expected] == expected


def test_the_feed_filters_by_type(merchant_a: MerchantWithKey, owner_a: User) -> None:
    pay(merchant_a.merchant)
    body = logged_in(owner_a).get(FEED, {"type": "charge.*"}).content.decode()
    assert "charge.succeeded" in body
    assert "<code>payment_intent.succeeded</code>" not in body


def test_a_merchant_user_feed_is_scoped(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey, owner_b: User
) -> None:
    theirs = pay(merchant_a.merchant)
    body = logged_in(owner_b).get(FEED, {"merchant": merchant_a.merchant.pk}).content.decode()
    assert theirs.id not in body
    # The socket URL carries no merchant: the consumer scopes by the session.
    assert 'data-feed-ws="/ws/events/"' in body
    assert "Waiting for events" in body


# --- Webhooks ------------------------------------------------------------------


def test_the_webhooks_page_full_and_partial(
    merchant_a: MerchantWithKey, operator_user: User
) -> None:
    made = deliveries_for(merchant_a.merchant)
    client = logged_in(operator_user)
    page = client.get(WEBHOOKS).content.decode()
    assert "http://127.0.0.1:9/hooks" in page and "Merchant A" in page
    assert made[0].event_id in page
    partial = client.get(
        WEBHOOKS, {"status": "pending"}, **htmx("webhook-deliveries")
    ).content.decode()
    assert partial.lstrip().startswith('<section id="webhook-deliveries"')
    assert made[0].event_id in partial
    none = client.get(WEBHOOKS, {"status": "succeeded"}, **htmx()).content.decode()
    assert made[0].event_id not in none and "No succeeded delivery" in none


def test_the_webhooks_empty_state(owner_a: User) -> None:
    body = logged_in(owner_a).get(WEBHOOKS).content.decode()
    assert "No webhook endpoints" in body and "/v1/webhook_endpoints" in body


def test_webhooks_are_scoped_to_the_merchant(merchant_a: MerchantWithKey, owner_b: User) -> None:
    made = deliveries_for(merchant_a.merchant)
    client = logged_in(owner_b)
    assert made[0].event_id not in client.get(WEBHOOKS).content.decode()
    assert client.get(delivery_url(made[0])).status_code == 404
    assert client.post(delivery_url(made[0], resend=True)).status_code == 404


def test_the_delivery_page_full_and_partial(merchant_a: MerchantWithKey, owner_a: User) -> None:
    delivery = deliveries_for(merchant_a.merchant)[0]
    client = logged_in(owner_a)
    page = client.get(delivery_url(delivery)).content.decode()
    assert 'id="webhook-delivery"' in page and "No attempt yet" in page and "Resend" in page
    partial = client.get(delivery_url(delivery), **htmx("webhook-delivery")).content.decode()
    assert partial.lstrip().startswith('<div id="webhook-delivery"')


def test_an_attempt_is_shown_with_its_response(merchant_a: MerchantWithKey, owner_a: User) -> None:
    # Port 9 (discard) refuses the connection: a failed attempt is recorded.
    delivery = deliveries_for(merchant_a.merchant)[0]
    webhooks.webhook_deliver(delivery_id=delivery.pk)
    body = logged_in(owner_a).get(delivery_url(delivery)).content.decode()
    assert "#1" in body and "no response" in body and "Stripe-Signature" in body


@pytest.mark.parametrize("viewer", ["viewer_a", "viewer_user"])
def test_a_viewer_cannot_resend(
    request: pytest.FixtureRequest, merchant_a: MerchantWithKey, viewer: str
) -> None:
    delivery = deliveries_for(merchant_a.merchant)[0]
    client = logged_in(request.getfixturevalue(viewer))
    assert "Resend" not in client.get(delivery_url(delivery)).content.decode()
    assert client.post(delivery_url(delivery, resend=True), **htmx()).status_code == 403


def test_an_operator_resends_a_failed_delivery(
    merchant_a: MerchantWithKey, operator_user: User
) -> None:
    delivery = deliveries_for(merchant_a.merchant)[0]
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, attempts=8, last_error="gave up"
    )
    response = logged_in(operator_user).post(delivery_url(delivery, resend=True), **htmx())
    assert response.status_code == 200
    assert "queued for delivery" in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 0, "")


def test_resending_to_a_disabled_endpoint_is_an_inline_error(
    merchant_a: MerchantWithKey, owner_a: User
) -> None:
    delivery = deliveries_for(merchant_a.merchant)[0]
    webhooks.webhook_endpoint_update(
        merchant=merchant_a.merchant, endpoint_id=delivery.endpoint_id, disabled=True
    )
    response = logged_in(owner_a).post(delivery_url(delivery, resend=True), **htmx())
    assert response.status_code == 400
    assert "disabled" in response.content.decode()


# --- Merchants and API keys (accounts pages, linked from here) -----------------


def test_the_merchants_page_links_to_payments_and_keys(
    merchant_a: MerchantWithKey, operator_user: User
) -> None:
    body = logged_in(operator_user).get("/accounts/merchants/").content.decode()
    assert "Merchant A" in body
    assert f"/payments/?merchant={merchant_a.merchant.pk}" in body
    assert f"/accounts/merchants/{merchant_a.merchant.pk}/keys/" in body


def test_merchant_users_cannot_open_the_merchants_page(owner_a: User) -> None:
    assert logged_in(owner_a).get("/accounts/merchants/").status_code == 403


def test_the_api_keys_page_full_and_partial(merchant_a: MerchantWithKey, owner_a: User) -> None:
    url = f"/accounts/merchants/{merchant_a.merchant.pk}/keys/"
    client = logged_in(owner_a)
    assert "Create secret key" in client.get(url).content.decode()
    partial = client.get(url, **htmx("api-keys")).content.decode()
    assert partial.lstrip().startswith('<div id="api-keys"')
