"""/v1/webhook_endpoints in Stripe's shape, with PayLab's roll_secret and resend.

Tenancy (merchant B gets 404 on A's endpoints) is in test_tenancy.py's tables.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from django.test import override_settings
from rest_framework.test import APIClient

from payments.models import WebhookDelivery
from payments.services import outbox
from tests.payments.api.conftest import Stripe

URL = "https://merchant.example/hooks"


def create(api: Stripe, json: bool = False, **params: Any) -> dict[str, Any]:
    body = {"url": URL, "enabled_events": ["payment_intent.succeeded"], **params}
    return api.ok(api.post("webhook_endpoints", body, json=json))


@pytest.mark.parametrize("json", [False, True], ids=["form", "json"])
@pytest.mark.django_db
def test_create_returns_stripes_object_with_the_secret_once(stripe_a: Stripe, json: bool) -> None:
    created = create(
        stripe_a,
        json=json,
        enabled_events=["payment_intent.succeeded", "charge.refunded"],
        description="orders",
        metadata={"team": "payments"},
    )

    assert created["id"].startswith("we_")
    assert created["object"] == "webhook_endpoint"
    assert created["secret"].startswith("whsec_")
    assert created["status"] == "enabled"
    assert created["url"] == URL
    assert created["enabled_events"] == ["charge.refunded", "payment_intent.succeeded"]
    assert (created["description"], created["metadata"]) == ("orders", {"team": "payments"})
    assert created["livemode"] is False and isinstance(created["created"], int)
    retrieved = stripe_a.ok(stripe_a.get(f"webhook_endpoints/{created['id']}"))
    listed = stripe_a.ok(stripe_a.get("webhook_endpoints"))
    assert "secret" not in retrieved
    assert retrieved == {k: v for k, v in created.items() if k != "secret"}
    assert listed["object"] == "list" and listed["data"] == [retrieved]


@pytest.mark.django_db
def test_every_event_is_a_star(stripe_a: Stripe) -> None:
    created = create(stripe_a, enabled_events=["*"])

    assert created["enabled_events"] == ["*"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://merchant.example/x"}, "url"),
        ({"enabled_events": ["Not An Event"]}, "enabled_events"),
        ({"enabled_events": []}, "enabled_events"),
        ({"colour": "blue"}, "colour"),
    ],
)
@pytest.mark.django_db
def test_invalid_parameters_are_stripes_400(
    stripe_a: Stripe, params: dict[str, Any], param: str
) -> None:
    body = {"url": URL, "enabled_events": ["*"], **params}

    response = stripe_a.post("webhook_endpoints", body, json=True)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


@pytest.mark.django_db
def test_production_refuses_a_loopback_url(stripe_a: Stripe) -> None:
    with override_settings(PAYLAB_PROFILE="production"):
        response = stripe_a.post(
            "webhook_endpoints", {"url": "http://127.0.0.1:8000/", "enabled_events": ["*"]}
        )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "url"
    assert "loopback" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_update_changes_fields_and_disables_and_enables(stripe_a: Stripe) -> None:
    we = create(stripe_a)["id"]

    updated = stripe_a.ok(
        stripe_a.post(
            f"webhook_endpoints/{we}",
            {"url": URL + "/v2", "enabled_events": ["*"], "disabled": True, "description": "x"},
        )
    )
    enabled = stripe_a.ok(stripe_a.post(f"webhook_endpoints/{we}", {"disabled": False}))

    assert updated["url"] == URL + "/v2"
    assert updated["enabled_events"] == ["*"]
    assert updated["status"] == "disabled" and updated["description"] == "x"
    assert updated["disabled_reason"] == "disabled by the merchant"
    assert enabled["status"] == "enabled" and enabled["disabled_reason"] is None


@pytest.mark.django_db
def test_roll_secret_returns_a_new_secret_once(stripe_a: Stripe) -> None:
    created = create(stripe_a)

    rolled = stripe_a.ok(stripe_a.post(f"webhook_endpoints/{created['id']}/roll_secret"))

    assert rolled["secret"].startswith("whsec_")
    assert rolled["secret"] != created["secret"]
    assert "secret" not in stripe_a.ok(stripe_a.get(f"webhook_endpoints/{created['id']}"))


@pytest.mark.django_db
def test_delete_answers_deleted_and_the_endpoint_is_gone(stripe_a: Stripe) -> None:
    we = create(stripe_a)["id"]

    deleted = stripe_a.ok(stripe_a.delete(f"webhook_endpoints/{we}"))

    assert deleted == {"id": we, "object": "webhook_endpoint", "deleted": True}
    assert stripe_a.get(f"webhook_endpoints/{we}").status_code == 404
    assert stripe_a.ok(stripe_a.get("webhook_endpoints"))["data"] == []


@pytest.mark.django_db
def test_resend_one_event_or_everything_undelivered_since(stripe_a: Stripe) -> None:
    # given an endpoint owed two payments' success events
    we = create(stripe_a)["id"]
    stripe_a.pay()
    stripe_a.pay()
    outbox.outbox_publish(relay="test", on_deliveries=lambda _: None)
    event = stripe_a.ok(stripe_a.get("events", {"type": "payment_intent.succeeded", "limit": 1}))
    event_id = event["data"][0]["id"]

    one = stripe_a.ok(stripe_a.post(f"webhook_endpoints/{we}/resend", {"event": event_id}))
    since = stripe_a.ok(stripe_a.post(f"webhook_endpoints/{we}/resend", {"since": 0}))
    neither = stripe_a.post(f"webhook_endpoints/{we}/resend", {})

    assert one == {"object": "webhook_resend", "webhook_endpoint": we, "deliveries": 1}
    assert since["deliveries"] == 2
    assert neither.status_code == 400
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"pending"}


@pytest.mark.django_db
def test_lists_page_newest_first(stripe_a: Stripe) -> None:
    ids = [create(stripe_a)["id"] for _ in range(3)]

    first = stripe_a.ok(stripe_a.get("webhook_endpoints", {"limit": 2}))
    rest = stripe_a.ok(
        stripe_a.get("webhook_endpoints", {"limit": 2, "starting_after": first["data"][-1]["id"]})
    )

    assert [e["id"] for e in first["data"] + rest["data"]] == ids[::-1]
    assert (first["has_more"], rest["has_more"]) == (True, False)


@pytest.mark.django_db(transaction=True)
def test_the_stripe_library_creates_and_lists_endpoints(live_server: Any, merchant_a: Any) -> None:
    client = stripe.StripeClient(
        merchant_a.secret, base_addresses={"api": live_server.url}, max_network_retries=0
    )

    created = client.v1.webhook_endpoints.create(
        params={"url": URL, "enabled_events": ["payment_intent.succeeded", "charge.refunded"]}
    )
    listed = client.v1.webhook_endpoints.list()

    assert created.secret.startswith("whsec_")
    assert [e.id for e in listed.data] == [created.id]
    assert listed.data[0].enabled_events == ["charge.refunded", "payment_intent.succeeded"]


@pytest.mark.django_db
def test_requests_without_a_key_are_401() -> None:
    response = APIClient().get("/v1/webhook_endpoints")

    assert response.status_code == 401
