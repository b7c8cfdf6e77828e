"""The payments admin: read-only pages, search, and actions that go through
the same services as the API (so events, ledger and `verify` stay right).

Payments are made through the services and the API, never by inserting rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from accounts.models import Merchant, User
from payments.models import (
    Charge,
    Customer,
    Dispute,
    Event,
    IdempotencyKey,
    LedgerTransaction,
    PaymentIntent,
    PaymentMethod,
    Refund,
)
from payments.models.intents import CaptureMethod
from payments.services import customers, intents, refunds, verify
from payments.state_machine import Status
from tests.conftest import MerchantWithKey, logged_in


def _pay(
    merchant: Merchant,
    card: str = "pm_card_visa",
    *,
    amount: int = 10_000,
    manual: bool = False,
    customer: Customer | None = None,
) -> PaymentIntent:
    outcome = intents.payment_intent_create(
        merchant=merchant,
        amount=amount,
        currency="usd",
        capture_method=CaptureMethod.MANUAL if manual else CaptureMethod.AUTOMATIC,
        customer=customer.pk if customer else None,
        payment_method=card,
        confirm=True,
    )
    return PaymentIntent.objects.get(pk=outcome.intent.pk)


def _fresh(intent: PaymentIntent) -> PaymentIntent:
    return PaymentIntent.objects.get(pk=intent.pk)


def _event_types(intent: PaymentIntent) -> list[str]:
    return list(
        Event.objects.filter(payment_intent=intent)
        .order_by("sequence")
        .values_list("type", flat=True)
    )


def _url(model: type[Model], view: str, *args: Any) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _act(client: Client, model: type[Model], action: str, *objects: Model) -> list[str]:
    """Run a changelist action on `objects`; the messages it left."""
    response = client.post(
        _url(model, "changelist"),
        {"action": action, "_selected_action": [o.pk for o in objects], "index": "0"},
        follow=True,
    )
    assert response.status_code == 200
    return [f"{m.level_tag}: {m.message}" for m in response.context["messages"]]


@pytest.fixture
def admin_client_(admin_user: User) -> Client:
    return logged_in(admin_user)


@pytest.fixture
def merchant(merchant_a: MerchantWithKey) -> Merchant:
    return merchant_a.merchant


@dataclass
class Data:
    """One of everything the payments admin shows, made through services and the API."""

    customer: Customer
    paid: PaymentIntent
    disputed: PaymentIntent
    refund: Refund
    idempotency_key: IdempotencyKey

    def one(self, model: type[Model]) -> Model:
        found = {
            PaymentIntent: self.paid,
            Charge: Charge.objects.get(pk=self.paid.latest_charge_id),
            Refund: self.refund,
            Dispute: Dispute.objects.get(payment_intent=self.disputed),
            Customer: self.customer,
            PaymentMethod: PaymentMethod.objects.get(pk=self.paid.payment_method_id),
            Event: Event.objects.filter(payment_intent=self.paid).first(),
            LedgerTransaction: LedgerTransaction.objects.filter(payment_intent=self.paid).first(),
            IdempotencyKey: self.idempotency_key,
        }[model]
        assert found is not None
        return found


@pytest.fixture
def data(merchant_a: MerchantWithKey) -> Data:
    response = merchant_a.api().post(
        "/v1/customers",
        {"email": "jenny@shop.test", "name": "Jenny Rosen"},
        format="json",
        headers={"Idempotency-Key": "admin-test-customer"},
    )
    assert response.status_code == 200, response.content
    customer = Customer.objects.get(pk=response.json()["id"])
    paid = _pay(merchant_a.merchant, customer=customer)
    refund = refunds.refund_create(
        merchant=merchant_a.merchant, payment_intent=paid.pk, amount=1_000
    )
    disputed = _pay(merchant_a.merchant, "pm_card_createDispute")
    return Data(
        customer=customer,
        paid=_fresh(paid),
        disputed=disputed,
        refund=refund,
        idempotency_key=IdempotencyKey.objects.get(key="admin-test-customer"),
    )


MODELS = [
    PaymentIntent,
    Charge,
    Refund,
    Dispute,
    Customer,
    PaymentMethod,
    Event,
    LedgerTransaction,
    IdempotencyKey,
]
READ_ONLY = MODELS


# --- Pages -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_and_change_page_answer_200_for_an_admin(
    admin_client_: Client, data: Data, model: type[Model]
) -> None:
    obj = data.one(model)

    listing = admin_client_.get(_url(model, "changelist"))
    page = admin_client_.get(_url(model, "change", obj.pk))

    assert listing.status_code == 200
    assert page.status_code == 200
    assert str(obj.pk) in listing.content.decode()


def test_payment_page_shows_the_event_timeline_in_order_and_formatted_amounts(
    admin_client_: Client, data: Data
) -> None:
    page = admin_client_.get(_url(PaymentIntent, "change", data.paid.pk)).content.decode()

    types = _event_types(data.paid)
    positions = [page.index(t) for t in types]
    assert positions == sorted(positions)
    assert "requires_confirmation → succeeded" in page
    assert "100.00 USD" in page  # amount
    assert "10.00 USD" in page  # refunded


def test_changelist_filters_by_status(admin_client_: Client, data: Data) -> None:
    response = admin_client_.get(_url(PaymentIntent, "changelist"), {"status__exact": "succeeded"})

    shown = {o.pk for o in response.context["cl"].result_list}
    assert shown == {data.paid.pk, data.disputed.pk}
    canceled = admin_client_.get(_url(PaymentIntent, "changelist"), {"status__exact": "canceled"})
    assert list(canceled.context["cl"].result_list) == []


# --- Search ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("4242", {"visa"}),
        ("4444", {"mastercard"}),
        ("jenny@shop.test", {"visa"}),
        ("shop.test", {"visa"}),
        ("nobody@else.test", set()),
    ],
)
def test_payment_search_by_last4_and_customer_email(
    admin_client_: Client, merchant: Merchant, term: str, expected: set[str]
) -> None:
    # given a Visa payment of Jenny's and an anonymous Mastercard one
    jenny = customers.customer_create(merchant=merchant, fields={"email": "jenny@shop.test"})
    by_brand = {
        "visa": _pay(merchant, "pm_card_visa", customer=jenny),
        "mastercard": _pay(merchant, "pm_card_mastercard"),
    }

    # when an admin searches
    response = admin_client_.get(_url(PaymentIntent, "changelist"), {"q": term})

    # then exactly the matching payments are listed
    shown = {o.pk for o in response.context["cl"].result_list}
    assert shown == {by_brand[b].pk for b in expected}


def test_payment_search_by_id_and_by_the_last4_of_a_declined_attempt(
    admin_client_: Client, merchant: Merchant
) -> None:
    paid = _pay(merchant, "pm_card_visa")
    declined = _pay(merchant, "pm_card_visa_chargeDeclined")
    assert declined.payment_method_id is None  # a decline clears it: found via the charge

    by_id = admin_client_.get(_url(PaymentIntent, "changelist"), {"q": paid.pk})
    by_last4 = admin_client_.get(_url(PaymentIntent, "changelist"), {"q": "0002"})

    assert [o.pk for o in by_id.context["cl"].result_list] == [paid.pk]
    assert [o.pk for o in by_last4.context["cl"].result_list] == [declined.pk]


# --- Actions ---------------------------------------------------------------------------


def test_capture_action_captures_through_the_service(
    admin_client_: Client, merchant: Merchant
) -> None:
    # given an authorised, uncaptured payment
    intent = _pay(merchant, manual=True)
    assert intent.status == Status.REQUIRES_CAPTURE

    # when an admin captures it
    notes = _act(admin_client_, PaymentIntent, "capture", intent)

    # then it is captured, with its events and ledger, and says so
    after = _fresh(intent)
    assert after.status == Status.SUCCEEDED
    assert after.amount_received == 10_000
    assert _event_types(intent)[-2:] == ["charge.captured", "payment_intent.succeeded"]
    assert notes == [f"success: {intent.pk}: captured 100.00 USD."]
    assert verify.run().ok


def test_cancel_action_voids_the_authorisation(admin_client_: Client, merchant: Merchant) -> None:
    intent = _pay(merchant, manual=True)

    notes = _act(admin_client_, PaymentIntent, "cancel", intent)

    after = _fresh(intent)
    assert (after.status, after.amount_capturable) == (Status.CANCELED, 0)
    assert _event_types(intent)[-1] == "payment_intent.canceled"
    assert notes == [f"success: {intent.pk}: canceled."]
    assert verify.run().ok


def test_refund_action_refunds_what_is_left(admin_client_: Client, merchant: Merchant) -> None:
    # given a payment already refunded in part
    intent = _pay(merchant)
    refunds.refund_create(merchant=merchant, payment_intent=intent.pk, amount=2_500)

    # when an admin refunds it
    notes = _act(admin_client_, PaymentIntent, "refund", intent)

    # then the rest is refunded by a second refund
    after = _fresh(intent)
    assert after.amount_refunded == after.amount_received == 10_000
    assert sorted(
        Refund.objects.filter(payment_intent=intent).values_list("amount", flat=True)
    ) == [
        2_500,
        7_500,
    ]
    assert _event_types(intent)[-2:] == ["refund.created", "charge.refunded"]
    assert len(notes) == 1
    assert notes[0].startswith(f"success: {intent.pk}: refunded 75.00 USD")
    assert verify.run().ok


@pytest.mark.parametrize(
    ("action", "status", "disputed_after"),
    [("close_won", Dispute.Status.WON, 0), ("close_lost", Dispute.Status.LOST, 10_000)],
)
def test_close_dispute_actions(
    admin_client_: Client,
    merchant: Merchant,
    action: str,
    status: str,
    disputed_after: int,
) -> None:
    # given a payment whose card opened a dispute
    intent = _pay(merchant, "pm_card_createDispute")
    dispute = Dispute.objects.get(payment_intent=intent)
    assert dispute.is_open

    # when an admin closes it
    notes = _act(admin_client_, Dispute, action, dispute)

    # then the dispute is closed through the service: event appended, ledger right
    dispute.refresh_from_db()
    assert dispute.status == status
    assert dispute.closed_at is not None
    assert "charge.dispute.closed" in _event_types(intent)
    assert _fresh(intent).amount_disputed == disputed_after
    assert notes == [f"success: {dispute.pk}: closed as {status}."]
    assert verify.run().ok


def test_an_action_on_an_illegal_state_reports_an_error_and_changes_nothing(
    admin_client_: Client, merchant: Merchant
) -> None:
    # given one payment that may be captured and one already captured
    captured = _pay(merchant)
    authorised = _pay(merchant, manual=True)
    events_before = _event_types(captured)

    # when an admin captures both
    notes = _act(admin_client_, PaymentIntent, "capture", captured, authorised)

    # then the legal one is captured, the other reports why not and is unchanged
    assert _fresh(authorised).status == Status.SUCCEEDED
    assert _fresh(captured).status == Status.SUCCEEDED
    assert _event_types(captured) == events_before
    errors = [n for n in notes if n.startswith("error:")]
    assert errors == [
        f"error: {captured.pk}: This PaymentIntent's status is succeeded, "
        "but it must be requires_capture to capture it."
    ]
    assert f"success: {authorised.pk}: captured 100.00 USD." in notes
    assert verify.run().ok


def test_closing_a_closed_dispute_reports_an_error(
    admin_client_: Client, merchant: Merchant
) -> None:
    intent = _pay(merchant, "pm_card_createDispute")
    dispute = Dispute.objects.get(payment_intent=intent)
    _act(admin_client_, Dispute, "close_won", dispute)

    notes = _act(admin_client_, Dispute, "close_lost", dispute)

    dispute.refresh_from_db()
    assert dispute.status == Dispute.Status.WON
    assert notes == [f"error: {dispute.pk}: This dispute is already closed (won)."]


# --- Read-only -------------------------------------------------------------------------


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda m: m.__name__)
def test_read_only_admins_refuse_add_change_and_delete(
    admin_client_: Client, data: Data, model: type[Model]
) -> None:
    obj = data.one(model)
    count = model._default_manager.count()

    delete = admin_client_.post(_url(model, "delete", obj.pk), {"post": "yes"})
    change = admin_client_.post(_url(model, "change", obj.pk), {})
    add = admin_client_.get(_url(model, "add"))

    assert (delete.status_code, change.status_code, add.status_code) == (403, 403, 403)
    assert model._default_manager.count() == count


@pytest.mark.parametrize("model", [Event, LedgerTransaction], ids=lambda m: m.__name__)
def test_the_event_log_and_ledger_offer_no_bulk_actions(
    admin_client_: Client, data: Data, model: type[Model]
) -> None:
    response = admin_client_.get(_url(model, "changelist"))

    # Not even Django's "delete selected": there is no action form at all.
    assert response.status_code == 200
    assert response.context["action_form"] is None


# --- Access ----------------------------------------------------------------------------


# The cast arrives through getfixturevalue, so the database mark is explicit:
# pytest-django orders (and sets up) tests by the marks it sees at collection.
@pytest.mark.django_db
@pytest.mark.parametrize("who", ["operator_user", "viewer_user", "owner_a"])
def test_only_the_admin_role_reaches_the_payments_admin(
    request: pytest.FixtureRequest, who: str
) -> None:
    user: User = request.getfixturevalue(who)
    url = _url(PaymentIntent, "changelist")

    response = logged_in(user).get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
