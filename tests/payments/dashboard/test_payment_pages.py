"""The payments explorer, the payment page and its operator actions.

Tenancy cast: merchant A's owner and viewer, merchant B's owner (404 on A's
objects), staff operator and viewer."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from accounts.models import User
from payments import selectors
from payments.models import Event, PaymentIntent
from payments.selectors import PaymentSearch
from tests.conftest import MerchantWithKey, logged_in
from tests.payments.dashboard.conftest import htmx, pay

pytestmark = pytest.mark.django_db

LIST = "/payments/"


def detail_url(intent: PaymentIntent) -> str:
    return reverse("payments:payment_detail", kwargs={"payment_id": intent.id})


def action_url(intent: PaymentIntent, action: str) -> str:
    return reverse("payments:payment_action", kwargs={"payment_id": intent.id, "action": action})


def event_types(intent: PaymentIntent) -> list[str]:
    return list(
        Event.objects.filter(payment_intent=intent)
        .order_by("sequence")
        .values_list("type", flat=True)
    )


# --- Explorer -----------------------------------------------------------------------


def test_the_explorer_needs_a_login(client) -> None:
    response = client.get(LIST)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_explorer_full_page_and_its_partial(paid_a: PaymentIntent, operator_user: User) -> None:
    client = logged_in(operator_user)
    # Given a payment, when the page is asked for whole
    page = client.get(LIST)
    assert page.status_code == 200
    body = page.content.decode()
    assert "<html" in body and 'id="payment-filters"' in body and paid_a.id in body
    assert "HX-Request" in page["Vary"]
    # and as an htmx swap, then only the results region comes back
    partial = client.get(LIST, **htmx("payment-results"))
    text = partial.content.decode()
    assert partial.status_code == 200
    assert text.lstrip().startswith('<section id="payment-results"')
    assert "<html" not in text and paid_a.id in text


def test_a_merchant_user_sees_only_their_payments(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey, owner_b: User
) -> None:
    mine = pay(merchant_b.merchant)
    theirs = pay(merchant_a.merchant)
    # Even asking for merchant A by parameter does not widen the scope.
    body = logged_in(owner_b).get(LIST, {"merchant": merchant_a.merchant.pk}).content.decode()
    assert mine.id in body
    assert theirs.id not in body


def test_the_empty_state_says_what_to_do(owner_a: User) -> None:
    body = logged_in(owner_a).get(LIST).content.decode()
    assert "No payments yet" in body and "/v1/payment_intents" in body
    filtered = logged_in(owner_a).get(LIST, {"status": "canceled"}).content.decode()
    assert "No payment matches these filters" in filtered


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "requires_capture"}, {"manual"}),
        ({"status": "succeeded"}, {"usd", "jpy", "meta"}),
        ({"currency": "jpy"}, {"jpy"}),
        ({"q": "A-42"}, {"meta"}),
        ({"q": "order:A-42"}, {"meta"}),
        ({"q": "buyer@example.test"}, {"usd"}),
        ({"q": "4444"}, {"jpy"}),
        ({"brand": "mastercard"}, {"jpy"}),
        # Major units, per currency exponent: 12 USD is 1200, 12 JPY is 12.
        ({"amount_min": "12", "amount_max": "20"}, {"usd", "meta"}),
        ({"amount_min": "500", "currency": "jpy"}, {"jpy"}),
        ({"processor": "nobody"}, set()),
        ({"date_from": "2000-01-01"}, {"usd", "jpy", "meta", "manual"}),
        ({"date_to": "2000-01-01"}, set()),
    ],
)
def test_explorer_filters_and_search(
    merchant_a: MerchantWithKey, owner_a: User, params: dict[str, str], expected: set[str]
) -> None:
    m = merchant_a.merchant
    made = {
        "usd": pay(m, amount=1_500, receipt_email="buyer@example.test"),
        "jpy": pay(m, amount=800, currency="jpy", card="pm_card_mastercard"),
        "meta": pay(m, amount=2_000, metadata={"order": "A-42"}),
        "manual": pay(m, amount=9_000, manual=True),
    }
    body = logged_in(owner_a).get(LIST, params, **htmx()).content.decode()
    shown = {name for name, intent in made.items() if intent.id in body}
    assert shown == expected


def test_filter_by_processor(merchant_a: MerchantWithKey, owner_a: User) -> None:
    intent = pay(merchant_a.merchant)
    client = logged_in(owner_a)
    assert intent.id in client.get(LIST, {"processor": intent.processor}).content.decode()
    assert intent.processor in client.get(LIST).content.decode()  # offered in the select


def test_search_by_id_finds_exactly_that_payment(paid_a: PaymentIntent, owner_a: User) -> None:
    other = pay(paid_a.merchant)
    body = logged_in(owner_a).get(LIST, {"q": paid_a.id}).content.decode()
    assert paid_a.id in body and other.id not in body


def test_a_malformed_filter_is_an_inline_error_not_a_500(owner_a: User) -> None:
    response = logged_in(owner_a).get(LIST, {"amount_min": "twelve", "currency": "xxx"})
    assert response.status_code == 200
    assert "not an amount" in response.content.decode()


def test_keyset_pages_walk_forward_and_back_without_gaps(merchant_a: MerchantWithKey) -> None:
    made = [pay(merchant_a.merchant, amount=1_000 + i) for i in range(5)]
    newest_first = [p.id for p in sorted(made, key=lambda p: (p.created, p.id), reverse=True)]
    search = PaymentSearch(scope=merchant_a.merchant.pk)
    # Forward, two at a time
    first = selectors.payment_search(search, limit=2)
    second = selectors.payment_search(search, after=first.next_cursor or "", limit=2)
    third = selectors.payment_search(search, after=second.next_cursor or "", limit=2)
    walked = [p.id for page in (first, second, third) for p in page.rows]
    assert walked == newest_first
    assert first.prev_cursor is None and third.next_cursor is None
    # and back from the third page
    back = selectors.payment_search(search, before=third.prev_cursor or "", limit=2)
    assert [p.id for p in back.rows] == newest_first[2:4]
    assert back.next_cursor is not None and back.prev_cursor is not None


def test_sorting_by_amount_both_ways(merchant_a: MerchantWithKey, owner_a: User) -> None:
    small, big = pay(merchant_a.merchant, amount=700), pay(merchant_a.merchant, amount=90_000)
    client = logged_in(owner_a)
    up = client.get(LIST, {"sort": "amount"}).content.decode()
    down = client.get(LIST, {"sort": "-amount"}).content.decode()
    assert up.index(small.id) < up.index(big.id)
    assert down.index(big.id) < down.index(small.id)
    assert 'aria-sort="descending"' in down


def test_csv_export_streams_the_filtered_payments(
    merchant_a: MerchantWithKey, merchant_b: MerchantWithKey, owner_a: User
) -> None:
    mine = [pay(merchant_a.merchant, amount=1_000 + i) for i in range(3)]
    pay(merchant_b.merchant)
    response = logged_in(owner_a).get("/payments/export.csv")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["id"] for r in rows} == {p.id for p in mine}
    assert rows[0]["amount_display"].endswith(" USD")


# --- Payment detail --------------------------------------------------------------


def test_the_payment_page_full_and_partials(paid_a: PaymentIntent, owner_a: User) -> None:
    client = logged_in(owner_a)
    page = client.get(detail_url(paid_a))
    body = page.content.decode()
    assert page.status_code == 200
    for region in ("payment-detail", "payment-actions", "payment-timeline"):
        assert f'id="{region}"' in body
    assert "payment_intent.succeeded" in body and "charge.succeeded" in body
    assert "merchant balance" in body  # the ledger entries
    assert "Routing and attempts" in body and "approved" in body
    detail = client.get(detail_url(paid_a), **htmx("payment-detail")).content.decode()
    assert detail.lstrip().startswith('<div id="payment-detail"') and "<html" not in detail
    timeline = client.get(detail_url(paid_a), **htmx("payment-timeline")).content.decode()
    assert timeline.lstrip().startswith('<section id="payment-timeline"')


def test_another_merchants_payment_is_404(paid_a: PaymentIntent, owner_b: User) -> None:
    client = logged_in(owner_b)
    assert client.get(detail_url(paid_a)).status_code == 404
    assert client.post(action_url(paid_a, "refund"), {"confirmed": "yes"}).status_code == 404
    assert PaymentIntent.objects.get(pk=paid_a.pk).amount_refunded == 0


@pytest.mark.parametrize("viewer", ["viewer_a", "viewer_user"])
def test_a_viewer_sees_the_page_but_cannot_act(
    request: pytest.FixtureRequest, paid_a: PaymentIntent, viewer: str
) -> None:
    client = logged_in(request.getfixturevalue(viewer))
    body = client.get(detail_url(paid_a)).content.decode()
    assert "Refund…" not in body and "need an operator" in body
    response = client.post(action_url(paid_a, "refund"), {"confirmed": "yes"}, **htmx())
    assert response.status_code == 403
    assert PaymentIntent.objects.get(pk=paid_a.pk).amount_refunded == 0


def test_actions_need_post_and_a_known_action(paid_a: PaymentIntent, operator_user: User) -> None:
    client = logged_in(operator_user)
    assert client.get(action_url(paid_a, "refund")).status_code == 405
    assert client.post(action_url(paid_a, "explode")).status_code == 404


def test_actions_are_csrf_protected(paid_a: PaymentIntent, operator_user: User) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(operator_user, backend="django.contrib.auth.backends.ModelBackend")
    response = client.post(action_url(paid_a, "refund"), {"confirmed": "yes"})
    assert response.status_code == 403
    assert PaymentIntent.objects.get(pk=paid_a.pk).amount_refunded == 0


def test_partial_capture_end_to_end_with_confirmation(
    authorized_a: PaymentIntent, operator_user: User
) -> None:
    client = logged_in(operator_user)
    url = action_url(authorized_a, "capture")
    # Given an authorisation, when the operator asks to capture 30.00
    ask = client.post(url, {"amount": "30.00"}, **htmx("payment-actions"))
    # then PayLab asks first, and nothing has moved
    assert ask.status_code == 200
    assert (
        "Capture 30.00 USD" in ask.content.decode() and 'name="confirmed"' in ask.content.decode()
    )
    assert PaymentIntent.objects.get(pk=authorized_a.pk).status == "requires_capture"
    # when they confirm
    done = client.post(url, {"amount": "30.00", "confirmed": "yes"}, **htmx("payment-actions"))
    # then the payment is captured, the page redraws whole, with the new events
    assert done.status_code == 200
    assert done["HX-Retarget"] == "#payment-detail"
    intent = PaymentIntent.objects.get(pk=authorized_a.pk)
    assert (intent.status, intent.amount_received) == ("succeeded", 3_000)
    assert event_types(intent)[-2:] == ["charge.captured", "payment_intent.succeeded"]
    body = done.content.decode()
    assert body.lstrip().startswith('<div id="payment-detail"')
    assert "Captured 30.00 USD" in body and "charge.captured" in body


def test_full_capture_without_htmx_redirects(authorized_a: PaymentIntent, owner_a: User) -> None:
    client = logged_in(owner_a)
    response = client.post(action_url(authorized_a, "capture"), {"confirmed": "yes"})
    assert response.status_code == 302
    assert response["Location"] == detail_url(authorized_a)
    assert PaymentIntent.objects.get(pk=authorized_a.pk).amount_received == 5_000
    assert "Captured 50.00 USD" in client.get(response["Location"]).content.decode()


def test_partial_then_full_refund_by_a_developer(paid_a: PaymentIntent, developer_a: User) -> None:
    client = logged_in(developer_a)
    url = action_url(paid_a, "refund")
    confirm = client.post(url, {"amount": "5"}, **htmx()).content.decode()
    assert "Refund 5.00 USD" in confirm and "partially" in confirm
    client.post(url, {"amount": "5", "confirmed": "yes"}, **htmx())
    client.post(url, {"confirmed": "yes"}, **htmx())
    intent = PaymentIntent.objects.get(pk=paid_a.pk)
    assert intent.amount_refunded == 2_000
    assert event_types(intent).count("refund.created") == 2
    body = client.get(detail_url(paid_a)).content.decode()
    assert "refunded in full" in body


def test_a_domain_error_is_shown_inline_as_a_4xx_partial(
    paid_a: PaymentIntent, operator_user: User
) -> None:
    response = logged_in(operator_user).post(
        action_url(paid_a, "refund"), {"amount": "999", "confirmed": "yes"}, **htmx()
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="payment-actions"')
    assert "greater than unrefunded amount" in body and 'role="alert"' in body


def test_a_bad_amount_is_a_400_with_the_reason(paid_a: PaymentIntent, operator_user: User) -> None:
    response = logged_in(operator_user).post(
        action_url(paid_a, "refund"), {"amount": "1.234"}, **htmx()
    )
    assert response.status_code == 400
    assert "at most 2 decimal places" in response.content.decode()


def test_cancel_an_authorisation(authorized_a: PaymentIntent, operator_user: User) -> None:
    client = logged_in(operator_user)
    client.post(action_url(authorized_a, "cancel"), {"reason": "duplicate", "confirmed": "yes"})
    intent = PaymentIntent.objects.get(pk=authorized_a.pk)
    assert (intent.status, intent.cancellation_reason) == ("canceled", "duplicate")
    assert event_types(intent)[-1] == "payment_intent.canceled"


@pytest.mark.parametrize(("outcome", "status"), [("won", "won"), ("lost", "lost")])
def test_close_a_dispute(
    merchant_a: MerchantWithKey, operator_user: User, outcome: str, status: str
) -> None:
    intent = pay(merchant_a.merchant, card="pm_card_createDispute")
    dispute = intent.disputes.get()
    client = logged_in(operator_user)
    page = client.get(detail_url(intent)).content.decode()
    assert "Close as won" in page and dispute.id in page
    client.post(
        action_url(intent, "close-dispute"),
        {"dispute": dispute.id, "outcome": outcome, "confirmed": "yes"},
        **htmx(),
    )
    dispute.refresh_from_db()
    assert dispute.status == status
    assert "charge.dispute.closed" in event_types(intent)
