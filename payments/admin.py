"""Django admin for payments: look, search, and act through the services.

The admin is an interface like the API (STYLE 1): it never writes a payment
row itself. Payment intents, charges, refunds and disputes are read-only
pages; their state changes only through the actions below, which call the
same service functions as the API (`payment_intent_capture`, `refund_create`,
`dispute_close`, …), so every change appends its events and posts its ledger
entries. The event log, the ledger and saved idempotency responses are
read-only for everyone, the admin role included (DESIGN rules 3 and 4).
Customers and payment methods are read-only too: their writes append events
through the API's services, which a model form would bypass.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from config.errors import PayLabError
from payments.models import (
    Charge,
    Customer,
    Dispute,
    Event,
    IdempotencyKey,
    LedgerEntry,
    LedgerTransaction,
    PaymentIntent,
    PaymentMethod,
    Refund,
)
from payments.models.ledger import Side
from payments.money import format_amount
from payments.services import disputes, intents, refunds

# --- Shared pieces -----------------------------------------------------------------


def money(field: str, description: str | None = None) -> Callable[[Any, Any], str]:
    """A display column/field showing `obj.<field>` in `obj.currency`: '12.34 USD'."""

    @admin.display(description=description or field.replace("_", " "), ordering=field)
    def show(model_admin: Any, obj: Any) -> str:
        return format_amount(getattr(obj, field), obj.currency)

    return show


def pretty_json(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only pages: no add, change or delete, whoever asks.

    Without change permission Django renders the change page with every field
    read-only and answers a POST to it, or to the delete page, with 403.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def run_each(
    request: HttpRequest,
    objects: QuerySet[Any],
    call: Callable[[Any], str],
) -> None:
    """Call a service per object, reporting each success or PayLabError as a
    message: one illegal state fails that object, not the others, and never
    a 500. Each service call is its own transaction."""
    for obj in objects.select_related("merchant").order_by("pk"):
        try:
            done = call(obj)
        except PayLabError as error:
            messages.error(request, f"{obj.pk}: {error.message}")
        else:
            messages.success(request, f"{obj.pk}: {done}")


# --- Payment intents ---------------------------------------------------------------


class EventTimelineInline(ReadOnlyInline):
    """The payment's event log, oldest first."""

    model = Event
    fk_name = "payment_intent"
    fields = ("sequence", "type", "transition", "created")
    readonly_fields = fields
    ordering = ("sequence",)
    verbose_name = "event"
    verbose_name_plural = "timeline"

    @admin.display(description="status change")
    def transition(self, obj: Event) -> str:
        if obj.from_status == obj.to_status:
            return obj.to_status or "—"
        return f"{obj.from_status or '∅'} → {obj.to_status}"


class ChargeInline(ReadOnlyInline):
    model = Charge
    fk_name = "payment_intent"
    fields = ("id", "status", "amount_display", "captured_display", "failure_code", "created")
    readonly_fields = fields
    ordering = ("created", "id")
    amount_display = money("amount")
    captured_display = money("amount_captured", "captured")


class RefundInline(ReadOnlyInline):
    model = Refund
    fk_name = "payment_intent"
    fields = ("id", "status", "amount_display", "reason", "failure_reason", "created")
    readonly_fields = fields
    ordering = ("created", "id")
    amount_display = money("amount")


@admin.register(PaymentIntent)
class PaymentIntentAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "merchant",
        "status",
        "amount_display",
        "received_display",
        "refunded_display",
        "customer",
        "card",
        "capture_method",
        "created",
    )
    list_filter = ("status", "merchant", "currency", "capture_method", "created")
    # `card_last4`: the card last tried, kept when a decline clears
    # `payment_method` (transition.set_card); one indexed column, no join.
    search_fields = ("^id", "customer__email", "=card_last4")
    list_select_related = ("merchant", "customer", "payment_method")
    show_full_result_count = False
    fields = (
        "id",
        "merchant",
        "status",
        "amount_display",
        "capturable_display",
        "received_display",
        "refunded_display",
        "disputed_display",
        "capture_method",
        "customer",
        "payment_method",
        "latest_charge",
        "processor",
        "description",
        "receipt_email",
        "statement_descriptor",
        "metadata_display",
        "last_payment_error_display",
        "next_action_display",
        "return_url",
        "authorization_expires_at",
        "canceled_at",
        "cancellation_reason",
        "version",
        "event_sequence",
        "created",
        "updated",
    )
    readonly_fields = fields
    inlines = [EventTimelineInline, ChargeInline, RefundInline]
    actions = ["capture", "cancel", "refund"]

    amount_display = money("amount")
    capturable_display = money("amount_capturable", "capturable")
    received_display = money("amount_received", "received")
    refunded_display = money("amount_refunded", "refunded")
    disputed_display = money("amount_disputed", "disputed")

    @admin.display(description="card")
    def card(self, obj: PaymentIntent) -> str:
        return str(obj.payment_method) if obj.payment_method else "—"

    @admin.display(description="metadata")
    def metadata_display(self, obj: PaymentIntent) -> SafeString:
        return pretty_json(obj.metadata)

    @admin.display(description="last payment error")
    def last_payment_error_display(self, obj: PaymentIntent) -> SafeString | str:
        return pretty_json(obj.last_payment_error) if obj.last_payment_error else "—"

    @admin.display(description="next action")
    def next_action_display(self, obj: PaymentIntent) -> SafeString | str:
        return pretty_json(obj.next_action) if obj.next_action else "—"

    @admin.action(description="Capture the full authorised amount")
    def capture(self, request: HttpRequest, queryset: QuerySet[PaymentIntent]) -> None:
        def call(obj: PaymentIntent) -> str:
            done = intents.payment_intent_capture(merchant=obj.merchant, intent_id=obj.pk)
            return f"captured {format_amount(done.amount_received, done.currency)}."

        run_each(request, queryset, call)

    @admin.action(description="Cancel (void)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[PaymentIntent]) -> None:
        def call(obj: PaymentIntent) -> str:
            intents.payment_intent_cancel(merchant=obj.merchant, intent_id=obj.pk)
            return "canceled."

        run_each(request, queryset, call)

    @admin.action(description="Refund everything not yet refunded")
    def refund(self, request: HttpRequest, queryset: QuerySet[PaymentIntent]) -> None:
        def call(obj: PaymentIntent) -> str:
            made = refunds.refund_create(merchant=obj.merchant, payment_intent=obj.pk)
            return (
                f"refunded {format_amount(made.amount, made.currency)} ({made.id}, {made.status})."
            )

        run_each(request, queryset, call)


# --- Charges, refunds, disputes ------------------------------------------------------


@admin.register(Charge)
class ChargeAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "payment_intent",
        "merchant",
        "status",
        "amount_display",
        "captured_display",
        "refunded_display",
        "payment_method",
        "disputed",
        "failure_code",
        "created",
    )
    list_filter = ("status", "merchant", "currency", "captured", "disputed", "created")
    search_fields = ("^id", "^payment_intent__id", "customer__email", "=payment_method__last4")
    list_select_related = ("merchant", "payment_method")
    show_full_result_count = False
    fields = (
        "id",
        "merchant",
        "payment_intent",
        "status",
        "amount_display",
        "captured_display",
        "refunded_display",
        "captured",
        "disputed",
        "customer",
        "payment_method",
        "failure_code",
        "failure_message",
        "processor",
        "authorization_code",
        "balance_transaction",
        "outcome_display",
        "payment_method_details_display",
        "created",
    )
    readonly_fields = fields

    amount_display = money("amount")
    captured_display = money("amount_captured", "captured amount")
    refunded_display = money("amount_refunded", "refunded")

    @admin.display(description="outcome")
    def outcome_display(self, obj: Charge) -> SafeString:
        return pretty_json(obj.outcome)

    @admin.display(description="payment method details")
    def payment_method_details_display(self, obj: Charge) -> SafeString:
        return pretty_json(obj.payment_method_details)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "payment_intent",
        "charge",
        "merchant",
        "status",
        "amount_display",
        "reason",
        "created",
    )
    list_filter = ("status", "merchant", "currency", "reason", "created")
    search_fields = (
        "^id",
        "^payment_intent__id",
        "^charge__id",
        "payment_intent__customer__email",
        "=charge__payment_method__last4",
    )
    list_select_related = ("merchant",)
    show_full_result_count = False
    fields = (
        "id",
        "merchant",
        "payment_intent",
        "charge",
        "status",
        "amount_display",
        "reason",
        "failure_reason",
        "metadata",
        "balance_transaction",
        "settles_at",
        "created",
    )
    readonly_fields = fields

    amount_display = money("amount")


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "payment_intent",
        "merchant",
        "status",
        "reason",
        "amount_display",
        "fee_display",
        "created",
        "closed_at",
    )
    list_filter = ("status", "merchant", "currency", "reason", "created")
    search_fields = (
        "^id",
        "^payment_intent__id",
        "^charge__id",
        "payment_intent__customer__email",
        "=charge__payment_method__last4",
    )
    list_select_related = ("merchant",)
    fields = (
        "id",
        "merchant",
        "payment_intent",
        "charge",
        "status",
        "reason",
        "amount_display",
        "fee_display",
        "created",
        "closed_at",
    )
    readonly_fields = fields
    actions = ["close_won", "close_lost"]

    amount_display = money("amount")
    fee_display = money("fee")

    def _close(self, request: HttpRequest, queryset: QuerySet[Dispute], *, won: bool) -> None:
        def call(obj: Dispute) -> str:
            closed = disputes.dispute_close(merchant=obj.merchant, dispute_id=obj.pk, won=won)
            return f"closed as {closed.status}."

        run_each(request, queryset, call)

    @admin.action(description="Close as won (funds reinstated)")
    def close_won(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> None:
        self._close(request, queryset, won=True)

    @admin.action(description="Close as lost")
    def close_lost(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> None:
        self._close(request, queryset, won=False)


# --- Customers and payment methods ---------------------------------------------------


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ("id", "email", "name", "merchant", "created", "deleted_at")
    list_filter = ("merchant", "created")
    search_fields = ("^id", "email", "name")
    list_select_related = ("merchant",)
    fields = (
        "id",
        "merchant",
        "email",
        "name",
        "phone",
        "description",
        "metadata",
        "created",
        "deleted_at",
    )
    readonly_fields = fields


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdmin):
    list_display = ("id", "type", "brand", "last4", "expiry", "customer", "merchant", "created")
    list_filter = ("type", "brand", "funding", "merchant", "created")
    search_fields = ("^id", "=last4", "customer__email", "=fingerprint")
    list_select_related = ("merchant", "customer")
    fields = (
        "id",
        "merchant",
        "customer",
        "type",
        "brand",
        "last4",
        "bin",
        "expiry",
        "funding",
        "country",
        "fingerprint",
        "behaviour",
        "details",
        "billing_details",
        "metadata",
        "created",
    )
    readonly_fields = fields

    @admin.display(description="expiry")
    def expiry(self, obj: PaymentMethod) -> str:
        if obj.exp_month is None or obj.exp_year is None:
            return "—"
        return f"{obj.exp_month:02d}/{obj.exp_year}"


# --- The event log, the ledger, idempotency ------------------------------------------


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "type",
        "merchant",
        "payment_intent",
        "sequence",
        "from_status",
        "to_status",
        "created",
    )
    list_filter = ("merchant", "created")
    search_fields = ("^id", "^type", "^payment_intent__id")
    list_select_related = ("merchant",)
    show_full_result_count = False
    fields = (
        "id",
        "type",
        "merchant",
        "payment_intent",
        "sequence",
        "from_status",
        "to_status",
        "delta",
        "data_display",
        "request_id",
        "idempotency_key",
        "created",
    )
    readonly_fields = fields

    @admin.display(description="data")
    def data_display(self, obj: Event) -> SafeString:
        return pretty_json(obj.data)


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry
    fields = ("account", "side", "amount_display")
    readonly_fields = fields
    show_change_link = False
    amount_display = money("amount")


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "type",
        "merchant",
        "amount_display",
        "fee_display",
        "net_display",
        "source",
        "payment_intent",
        "created",
    )
    list_filter = ("type", "merchant", "currency", "created")
    search_fields = ("^id", "^source", "^payment_intent__id")
    list_select_related = ("merchant",)
    show_full_result_count = False
    fields = (
        "id",
        "type",
        "merchant",
        "amount_display",
        "fee_display",
        "net_display",
        "balanced",
        "source",
        "payment_intent",
        "description",
        "created",
    )
    readonly_fields = fields
    inlines = [LedgerEntryInline]

    amount_display = money("amount")
    fee_display = money("fee")
    net_display = money("net")

    @admin.display(description="debits = credits", boolean=True)
    def balanced(self, obj: LedgerTransaction) -> bool:
        # Per currency is per transaction here: a transaction has one currency.
        debits = sum(e.amount for e in obj.entries.all() if e.side == Side.DEBIT)
        credits = sum(e.amount for e in obj.entries.all() if e.side == Side.CREDIT)
        return debits == credits


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ("key", "merchant", "method", "path", "status", "response_status", "created")
    list_filter = ("status", "merchant", "created")
    search_fields = ("=key", "path", "=request_id")
    list_select_related = ("merchant",)
    fields = (
        "key",
        "merchant",
        "method",
        "path",
        "status",
        "response_status",
        "response_display",
        "request_hash",
        "request_id",
        "created",
        "completed_at",
    )
    readonly_fields = fields

    @admin.display(description="saved response")
    def response_display(self, obj: IdempotencyKey) -> SafeString | str:
        if obj.response_body is None:
            return "—"
        text = bytes(obj.response_body).decode("utf-8", errors="replace")
        try:
            return pretty_json(json.loads(text))
        except ValueError:
            return text


# The simulated processors (issue 4) register their own admin.
from payments import admin_processors  # noqa: E402, F401
