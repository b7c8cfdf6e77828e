"""/v1/payment_intents: create, list, retrieve, update, confirm, capture, cancel."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_view
from rest_framework.request import Request

from config.errors import InvalidRequestError
from payments import directives, presenters, selectors
from payments.api import schema
from payments.api import serializers as s
from payments.api.base import Body, StripeApi, list_object
from payments.api.deferred import Pending
from payments.models import PaymentIntent
from payments.services import confirmations, intents
from payments.services.intents import Outcome

Params = dict[str, Any]
SIMULATE_DOC = (
    "\n\n**Fault injection (test keys):** a `PayLab-Simulate` header — or the same text in "
    "`metadata[paylab_simulate]`, which follows the payment to its capture and refunds — forces an outcome "
    "whatever the card: directives `name=value` separated by `;`: `decline=<decline code>` "
    "(the issuer declines), `latency=250ms|1.5s` (≤ 30 s; the processor answers that late), "
    "`processor_error=timeout|processor_unavailable` (the first processor fails; failover "
    "applies), `processor=<name>` (route there), `http=400…599` (answer that status, do "
    "nothing), `at=confirm|capture|refund|any` (default `confirm`; at `refund`, a decline or "
    "processor error makes the refund pending, then `failed` with that code as its "
    "`failure_reason`). Applied directives are recorded "
    "on the charge (`paylab.simulate`) and its events; a malformed one is a 400 whose "
    "`param` names the header or metadata key. The charge's `paylab` shows the routing "
    "decision and every processor attempt."
)
COMPATIBILITY_ONLY = ("automatic_payment_methods", "setup_future_usage", "off_session")


def _hosted_base(request: Request) -> str:
    return request.build_absolute_uri("/")


def answer(outcome: Outcome, expand: list[str] | None) -> tuple[int, Body]:
    """200 with the payment, or Stripe's 402 card error carrying the payment."""
    return confirmations.outcome_body(outcome, expand)


def simulate_header(view: StripeApi, request: Request) -> str | None:
    """The `PayLab-Simulate` header; test keys only."""
    header = request.headers.get(directives.HEADER)
    if header and not view.client(request).api_key.prefix.startswith("sk_test"):
        raise InvalidRequestError(
            f"{directives.HEADER} is accepted with test keys only.", param=directives.HEADER
        )
    return header


def settle(view: StripeApi, outcome: Outcome, expand: list[str] | None) -> tuple[int, Body]:
    """The answer now, or — the processor taking time — a pending marker the
    deferred wrapper completes after the wait (payments.api.deferred)."""
    status, body = answer(outcome, expand)
    if outcome.pending_ms:
        view.pending = Pending(
            intent_id=outcome.intent.id,
            merchant_id=outcome.intent.merchant_id,
            delay_ms=outcome.pending_ms,
            idempotency_key=(view.request.headers.get("Idempotency-Key") or "").strip(),
            fallback=confirmations.render(body),
        )
    view.delay_ms = outcome.delay_ms
    return status, body


@extend_schema_view(
    get=schema.operation(
        "ListPaymentIntents",
        summary="List payment intents",
        tag="Payment intents",
        query=s.PaymentIntentListSerializer,
        response=schema.list_of(schema.PaymentIntentSerializer),
    ),
    post=schema.operation(
        "CreatePaymentIntent",
        summary="Create a payment intent",
        description="With `confirm=true` it is confirmed at once: a decline answers 402 "
        "with the payment inside the error." + SIMULATE_DOC,
        tag="Payment intents",
        request=s.PaymentIntentCreateSerializer,
        response=schema.PaymentIntentSerializer,
        write=True,
        declines=True,
    ),
)
class PaymentIntentCollectionApi(StripeApi):
    serializers = {"GET": s.PaymentIntentListSerializer, "POST": s.PaymentIntentCreateSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        query = selectors.payment_intents(
            self.merchant_id(request), customer=params.get("customer")
        )
        return 200, list_object(request, query, params, presenters.payment_intent)

    def perform_post(self, request: Request, params: Params) -> tuple[int, Body]:
        expand = params.pop("expand", None)
        for name in COMPATIBILITY_ONLY:
            params.pop(name, None)
        outcome = intents.payment_intent_create(
            merchant=self.client(request).merchant,
            hosted_base_url=_hosted_base(request),
            simulate=simulate_header(self, request),
            defer=True,
            expand=expand,
            **params,
        )
        return settle(self, outcome, expand)


@extend_schema_view(
    get=schema.operation(
        "RetrievePaymentIntent",
        summary="Retrieve a payment intent",
        tag="Payment intents",
        path_id=("pi_", "payment intent"),
        response=schema.PaymentIntentSerializer,
    ),
    post=schema.operation(
        "UpdatePaymentIntent",
        summary="Update a payment intent",
        description="Before confirmation; `metadata` may change in any status.",
        tag="Payment intents",
        request=s.PaymentIntentUpdateSerializer,
        path_id=("pi_", "payment intent"),
        response=schema.PaymentIntentSerializer,
        write=True,
    ),
)
class PaymentIntentApi(StripeApi):
    serializers = {"GET": s.ExpandOnlySerializer, "POST": s.PaymentIntentUpdateSerializer}

    def perform_get(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        intent = selectors.get_object(
            PaymentIntent, merchant_id=self.merchant_id(request), object_id=id
        )
        return 200, presenters.payment_intent(intent, params.get("expand"))

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        expand = params.pop("expand", None)
        metadata = params.pop("metadata", None)
        payment_method = params.pop("payment_method", None)
        intent = intents.payment_intent_update(
            merchant=self.client(request).merchant,
            intent_id=id,
            fields=params,
            metadata=metadata,
            payment_method=payment_method,
        )
        return 200, presenters.payment_intent(intent, expand)


@extend_schema_view(
    post=schema.operation(
        "ConfirmPaymentIntent",
        summary="Confirm a payment intent",
        description="Authorises (and with automatic capture, captures) the payment, or asks "
        "for 3-D Secure (`requires_action`). A decline answers 402." + SIMULATE_DOC,
        tag="Payment intents",
        request=s.PaymentIntentConfirmSerializer,
        path_id=("pi_", "payment intent"),
        response=schema.PaymentIntentSerializer,
        write=True,
        declines=True,
    ),
)
class PaymentIntentConfirmApi(StripeApi):
    serializers = {"POST": s.PaymentIntentConfirmSerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        expand = params.pop("expand", None)
        params.pop("off_session", None)
        outcome = intents.payment_intent_confirm(
            merchant=self.client(request).merchant,
            intent_id=id,
            hosted_base_url=_hosted_base(request),
            simulate=simulate_header(self, request),
            defer=True,
            expand=expand,
            **params,
        )
        return settle(self, outcome, expand)


@extend_schema_view(
    post=schema.operation(
        "CapturePaymentIntent",
        summary="Capture a payment intent",
        description="All or part of the authorised amount; the rest is released. "
        "A `PayLab-Simulate` directive with `at=capture` may fail it (402; the payment stays "
        "`requires_capture`)." + SIMULATE_DOC,
        tag="Payment intents",
        request=s.PaymentIntentCaptureSerializer,
        path_id=("pi_", "payment intent"),
        response=schema.PaymentIntentSerializer,
        write=True,
        declines=True,
    ),
)
class PaymentIntentCaptureApi(StripeApi):
    serializers = {"POST": s.PaymentIntentCaptureSerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        outcome = intents.payment_intent_capture_outcome(
            merchant=self.client(request).merchant,
            intent_id=id,
            amount_to_capture=params.get("amount_to_capture"),
            simulate=simulate_header(self, request),
        )
        return settle(self, outcome, params.get("expand"))


@extend_schema_view(
    post=schema.operation(
        "CancelPaymentIntent",
        summary="Cancel a payment intent",
        description="Voids it; an authorisation is released.",
        tag="Payment intents",
        request=s.PaymentIntentCancelSerializer,
        path_id=("pi_", "payment intent"),
        response=schema.PaymentIntentSerializer,
        write=True,
    ),
)
class PaymentIntentCancelApi(StripeApi):
    serializers = {"POST": s.PaymentIntentCancelSerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        intent = intents.payment_intent_cancel(
            merchant=self.client(request).merchant,
            intent_id=id,
            cancellation_reason=params.get("cancellation_reason"),
        )
        return 200, presenters.payment_intent(intent, params.get("expand"))
