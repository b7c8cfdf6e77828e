"""The payments pages of the staff dashboard (STYLE 9, 10).

One view per screen, one template per screen, the region that refreshes as
a named partial whose name is its root element's id: an htmx request gets
the partial, a plain one the whole page (`Vary: HX-Request`).

Who may see what comes from `accounts.roles`: staff see every merchant, a
merchant user only their own; another merchant's payment or delivery is a
404 (looked up inside the scope, never fetched then refused). Acting —
capture, refund, cancel, closing a dispute, resending a webhook — needs
`roles.can_operate` for the object's merchant: a viewer's POST is a 403.

Each POST handler calls exactly one service. The payment actions have a
confirmation step that works without JavaScript: the first POST renders
"you are about to …", the second (with `confirmed=yes`) acts. Domain errors
(`PayLabError`) are shown inline in a 4xx partial.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from accounts import roles
from accounts.models import Merchant
from config.errors import PayLabError
from payments import money, presenters, selectors
from payments.dashboard.forms import (
    AmountForm,
    DeliveryFilterForm,
    DisputeCloseForm,
    FeedFilterForm,
    PaymentFilterForm,
)
from payments.models import PaymentIntent, WebhookDelivery
from payments.selectors import PaymentSearch
from payments.services import disputes, intents, refunds, webhooks
from payments.state_machine import Status

ACTIONS = ("capture", "refund", "cancel", "close-dispute")
EXPORT_CHUNK = 1000


def _scope(request: HttpRequest) -> int | None:
    return roles.merchant_scope(request.user)


def _page(
    request: HttpRequest,
    template: str,
    partial: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> HttpResponse:
    """The whole page, or its `partial` for htmx."""
    name = f"{template}#{partial}" if request.htmx else template  # type: ignore[attr-defined]
    response = render(request, name, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _merchants(request: HttpRequest) -> list[Merchant]:
    """Merchants a staff user may filter by; a merchant user has no choice."""
    if _scope(request) is not None:
        return []
    return list(Merchant.objects.order_by("name").only("id", "name"))


# --- Payments explorer -----------------------------------------------------------


@roles.role_required(roles.any_role)
@require_GET
def payment_list(request: HttpRequest) -> HttpResponse:
    form = PaymentFilterForm(request.GET)
    scope = _scope(request)
    search = form.search(scope)
    data = form.cleaned_data if form.is_valid() else {}
    page = selectors.payment_search(
        search, after=data.get("after") or "", before=data.get("before") or ""
    )
    filtered = any(
        data.get(k)
        for k in (
            "q",
            "status",
            "merchant",
            "processor",
            "currency",
            "brand",
            "amount_min",
            "amount_max",
            "date_from",
            "date_to",
        )
    )
    context = {
        "form": form,
        "page": page,
        "filtered": filtered,
        "sort": data.get("sort") or "-created",
        "choices": selectors.payment_filter_choices(scope),
        "merchants": _merchants(request),
    }
    return _page(request, "payments/payment_list.html", "payment-results", context)


CSV_COLUMNS = (
    "id",
    "created",
    "merchant",
    "status",
    "amount",
    "currency",
    "amount_display",
    "amount_received",
    "amount_refunded",
    "capture_method",
    "processor",
    "brand",
    "last4",
    "customer_email",
    "description",
)


def _csv_row(intent: PaymentIntent) -> list[Any]:
    # The card last tried (as the brand filter and last4 search read it),
    # also for a declined payment, whose payment method is cleared.
    return [
        intent.id,
        intent.created.isoformat(),
        intent.merchant.name,
        intent.status,
        intent.amount,
        intent.currency,
        money.format_amount(intent.amount, intent.currency),
        intent.amount_received,
        intent.amount_refunded,
        intent.capture_method,
        intent.processor,
        intent.card_brand,
        intent.card_last4,
        intent.customer.email if intent.customer else "",
        intent.description,
    ]


def _csv_chunks(search: PaymentSearch) -> Iterator[str]:
    """The whole filtered result, a keyset page at a time: memory stays at one
    page and no query holds a cursor or a transaction open between chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    after = ""
    while True:
        page = selectors.payment_search(search, after=after, limit=EXPORT_CHUNK)
        for intent in page.rows:
            writer.writerow(_csv_row(intent))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if page.next_cursor is None:
            return
        after = page.next_cursor


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    # Under ASGI Django would otherwise consume a sync iterator whole before
    # sending a byte. Each chunk is read in the one thread-sensitive thread,
    # so every query uses the same database connection.
    def step() -> str | None:
        return next(chunks, None)

    read = sync_to_async(step, thread_sensitive=True)
    while True:
        chunk = await read()
        if chunk is None:
            return
        yield chunk


@roles.role_required(roles.any_role)
@require_GET
def payment_export(request: HttpRequest) -> HttpResponse:
    form = PaymentFilterForm(request.GET)
    chunks = _csv_chunks(form.search(_scope(request)))
    content: Any = _async_chunks(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="payments.csv"'
    response["Cache-Control"] = "no-store"
    return response  # type: ignore[return-value]  # a streaming response is a response to Django


# --- Payment detail and operator actions -------------------------------------------


def _get_payment_for_user(request: HttpRequest, payment_id: str) -> PaymentIntent:
    """The payment inside the user's scope, or 404 (another merchant's too)."""
    intent = selectors.payment_for_scope(_scope(request), payment_id)
    if intent is None:
        raise Http404("No such payment.")
    return intent


def _routing(outcome: dict[str, Any]) -> dict[str, Any]:
    """PayLab's routing record under `outcome.paylab`, laid out for a table:
    whatever keys the attempts carry become columns."""
    paylab = outcome.get("paylab") or {}
    attempts = [a for a in paylab.get("attempts") or [] if isinstance(a, dict)]
    columns: list[str] = []
    for attempt in attempts:
        columns.extend(k for k in attempt if k not in columns)
    extra = {
        k: _readable(v)
        for k, v in paylab.items()
        if k not in {"attempts", "processor", "breaker_changes"}
    }
    # jsonb keeps keys in its own order, so the change is spelled out here.
    changes = [c for c in paylab.get("breaker_changes") or [] if isinstance(c, dict)]
    if changes:
        extra["breaker_changes"] = "; ".join(
            f"{c.get('processor')}: {c.get('from')} → {c.get('to')} ({c.get('reason')})"
            for c in changes
        )
    return {
        "processor": paylab.get("processor", ""),
        "columns": columns,
        "attempts": [[a.get(c) for c in columns] for a in attempts],
        "extra": extra,
    }


def _readable(value: Any) -> str:
    """A routing value for people: lists joined, mappings as `key: value`."""
    if isinstance(value, dict):
        return " · ".join(f"{k.replace('_', ' ')}: {_readable(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_readable(v) for v in value) if value else "none"
    return "—" if value is None else str(value)


def _detail_context(request: HttpRequest, intent: PaymentIntent, **extra: Any) -> dict[str, Any]:
    detail = selectors.payment_detail(intent)
    status = intent.status
    may_act = roles.can_operate(request.user, intent.merchant_id)
    context: dict[str, Any] = {
        "intent": intent,
        "detail": detail,
        "charges": [(c, _routing(c.outcome or {})) for c in detail.charges],
        "may_act": may_act,
        "can_capture": may_act and status == Status.REQUIRES_CAPTURE,
        "can_cancel": may_act
        and status
        in {
            Status.REQUIRES_PAYMENT_METHOD,
            Status.REQUIRES_CONFIRMATION,
            Status.REQUIRES_ACTION,
            Status.REQUIRES_CAPTURE,
        },
        "can_refund": may_act
        and status == Status.SUCCEEDED
        and detail.refundable > 0
        and not intent.amount_disputed,
        "open_dispute": detail.open_dispute,
        "ws_path": f"/ws/payments/{intent.id}/",
        "last_event_id": detail.events[-1].id if detail.events else "",
    }
    context.update(extra)
    return context


@roles.role_required(roles.any_role)
@require_GET
def payment_detail(request: HttpRequest, payment_id: str) -> HttpResponse:
    intent = _get_payment_for_user(request, payment_id)
    partial = "payment-timeline" if request.htmx.target == "payment-timeline" else "payment-detail"  # type: ignore[attr-defined]
    return _page(request, "payments/payment_detail.html", partial, _detail_context(request, intent))


def _confirmation(action: str, intent: PaymentIntent, data: dict[str, Any]) -> str:
    amount = data.get("amount")
    currency = intent.currency
    if action == "capture":
        captured = intent.amount_capturable if amount is None else amount
        return f"Capture {money.format_amount(captured, currency)} of {intent.id}? The rest of the authorisation is released."
    if action == "refund":
        left = intent.amount_received - intent.amount_refunded
        refunded = left if amount is None else amount
        kind = "in full" if refunded == left else "partially"
        return f"Refund {money.format_amount(refunded, currency)} of {intent.id} ({kind})? This cannot be undone."
    if action == "cancel":
        return f"Cancel {intent.id}? An authorisation is released; the payment cannot be confirmed again."
    return f"Close dispute {data.get('dispute')} as {data.get('outcome')}? This cannot be undone."


def _act(action: str, intent: PaymentIntent, data: dict[str, Any]) -> str:
    """Call the one service behind `action`; return what to tell the user."""
    merchant = intent.merchant
    if action == "capture":
        done = intents.payment_intent_capture(
            merchant=merchant, intent_id=intent.id, amount_to_capture=data.get("amount")
        )
        return f"Captured {money.format_amount(done.amount_received, done.currency)}."
    if action == "refund":
        refund = refunds.refund_create(
            merchant=merchant,
            payment_intent=intent.id,
            amount=data.get("amount"),
            reason=data.get("reason") or None,
        )
        return f"Refund {refund.id} of {money.format_amount(refund.amount, refund.currency)} {refund.status}."
    if action == "cancel":
        intents.payment_intent_cancel(
            merchant=merchant,
            intent_id=intent.id,
            cancellation_reason=data.get("reason") or "requested_by_customer",
        )
        return "Payment canceled."
    dispute = disputes.dispute_close(
        merchant=merchant, dispute_id=data["dispute"], won=data["outcome"] == "won"
    )
    return f"Dispute {dispute.id} closed: {dispute.status.replace('_', ' ')}."


@roles.role_required(roles.any_role)
@require_POST
def payment_action(request: HttpRequest, payment_id: str, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404("No such action.")
    intent = _get_payment_for_user(request, payment_id)
    if not roles.can_operate(request.user, intent.merchant_id):
        raise PermissionDenied
    form: AmountForm | DisputeCloseForm
    if action == "close-dispute":
        form = DisputeCloseForm(request.POST)
    else:
        form = AmountForm(request.POST, currency=intent.currency)
    template = "payments/payment_detail.html"
    if not form.is_valid():
        context = _detail_context(request, intent, action=action, form_errors=form.errors)
        return _page(request, template, "payment-actions", context, status=400)
    data = form.cleaned_data
    if request.POST.get("confirmed") != "yes":
        context = _detail_context(
            request,
            intent,
            action=action,
            confirm=_confirmation(action, intent, data),
            posted=request.POST,
        )
        return _page(request, template, "payment-actions", context)
    try:
        notice = _act(action, intent, data)
    except PayLabError as error:
        context = _detail_context(request, intent, action=action, error=error)
        return _page(request, template, "payment-actions", context, status=error.status)
    if not request.htmx:  # type: ignore[attr-defined]
        messages.success(request, notice)
        return redirect("payments:payment_detail", payment_id=intent.id)
    fresh = _get_payment_for_user(request, payment_id)
    response = _page(
        request, template, "payment-detail", _detail_context(request, fresh, notice=notice)
    )
    # The form aimed at the actions box; success redraws the whole payment.
    response["HX-Retarget"] = "#payment-detail"
    response["HX-Reswap"] = "outerHTML"
    return response


# --- Live feed -------------------------------------------------------------------


@roles.role_required(roles.any_role)
@require_GET
def live_feed(request: HttpRequest) -> HttpResponse:
    form = FeedFilterForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    scope = _scope(request)
    merchant_id = data.get("merchant") if scope is None else None
    event_type = data.get("type") or ""
    events = selectors.recent_events(
        scope, merchant_id=merchant_id, types=[event_type] if event_type else None
    )
    ws_path = "/ws/events/"
    if merchant_id:
        ws_path += f"?merchant={merchant_id}"
    context = {
        "form": form,
        "events": events,
        "event_type": event_type,
        "ws_path": ws_path,
        "merchants": _merchants(request),
        "type_choices": FeedFilterForm.TYPES,
        "merchant_id": merchant_id,
    }
    return _page(request, "payments/live_feed.html", "live-feed", context)


# --- Webhooks --------------------------------------------------------------------


@roles.role_required(roles.any_role)
@require_GET
def webhook_list(request: HttpRequest) -> HttpResponse:
    form = DeliveryFilterForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    scope = _scope(request)
    merchant_id = data.get("merchant") if scope is None else None
    endpoints = list(selectors.webhook_endpoints_for_scope(scope, merchant_id=merchant_id))
    page = selectors.webhook_deliveries(
        scope,
        merchant_id=merchant_id,
        endpoint_id=data.get("endpoint") or "",
        status=data.get("status") or "",
        after=data.get("after"),
    )
    context = {
        "form": form,
        "endpoints": endpoints,
        "page": page,
        "merchants": _merchants(request),
        "status": data.get("status") or "",
        "merchant_id": merchant_id,
        "endpoint_id": data.get("endpoint") or "",
    }
    return _page(request, "payments/webhook_list.html", "webhook-deliveries", context)


def _get_delivery_for_user(request: HttpRequest, delivery_id: int) -> WebhookDelivery:
    delivery = selectors.webhook_delivery_for_scope(_scope(request), delivery_id)
    if delivery is None:
        raise Http404("No such delivery.")
    return delivery


def _delivery_context(
    request: HttpRequest, delivery: WebhookDelivery, **extra: Any
) -> dict[str, Any]:
    endpoint = delivery.endpoint
    return {
        "delivery": delivery,
        "endpoint": endpoint,
        "attempts": selectors.webhook_attempts(delivery),
        # The body as sent: the event's Stripe JSON.
        "payload": json.dumps(presenters.event(delivery.event), indent=2),
        "may_act": roles.can_operate(request.user, delivery.merchant_id),
        "payment_url": reverse(
            "payments:payment_detail", kwargs={"payment_id": delivery.event.payment_intent_id}
        )
        if delivery.event.payment_intent_id
        else "",
        **extra,
    }


@roles.role_required(roles.any_role)
@require_GET
def webhook_delivery(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = _get_delivery_for_user(request, delivery_id)
    return _page(
        request,
        "payments/webhook_delivery.html",
        "webhook-delivery",
        _delivery_context(request, delivery),
    )


@roles.role_required(roles.any_role)
@require_POST
def webhook_delivery_resend(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = _get_delivery_for_user(request, delivery_id)
    if not roles.can_operate(request.user, delivery.merchant_id):
        raise PermissionDenied
    template = "payments/webhook_delivery.html"
    try:
        webhooks.webhook_resend(
            merchant=delivery.endpoint.merchant,
            endpoint_id=delivery.endpoint_id,
            event_id=delivery.event_id,
        )
    except PayLabError as error:
        context = _delivery_context(request, delivery, error=error)
        return _page(request, template, "webhook-delivery", context, status=error.status)
    notice = f"{delivery.event_id} queued for delivery to {delivery.endpoint.url} again."
    if not request.htmx:  # type: ignore[attr-defined]
        messages.success(request, notice)
        return redirect("payments:webhook_delivery", delivery_id=delivery.pk)
    fresh = _get_delivery_for_user(request, delivery_id)
    context = _delivery_context(request, fresh, notice=notice)
    return _page(request, template, "webhook-delivery", context)
