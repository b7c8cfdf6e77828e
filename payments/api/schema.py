"""The OpenAPI description of the merchant API (drf-spectacular).

The /v1/ views are plain `StripeApi` classes: they parse with their own
input serializers and answer with `payments.presenters` dicts, so
spectacular cannot guess their shapes. This module tells it:

- response serializers that mirror the presenters field for field. They
  never render anything — the presenters are the contract; these describe
  it, and tests/payments/api/test_schema.py holds them to real responses;
- list parameters derived from each view's list serializer, so the two
  cannot drift;
- `Idempotency-Key` on every write, Stripe's error envelope with the status
  codes each operation can answer, and the key authentication (the secret
  key as HTTP Basic username, or a Bearer token).

Views carry the result as `@extend_schema_view(get=operation(...), …)`.
Imported at startup by `PaymentsConfig.ready()` so the extensions register
even before any view module is.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.plumbing import build_array_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiRequest,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers

from payments.api.fields import ListParamsSerializer, MetadataField
from payments.models import Charge, Dispute, LedgerTransaction, PaymentMethod, Refund
from payments.models.intents import CaptureMethod
from payments.services import metadata as metadata_rules
from payments.services.intents import CANCELLATION_REASONS
from payments.services.refunds import REASONS as REFUND_REASONS
from payments.state_machine import Status

# --- Field helpers ---------------------------------------------------------------


def _const(value: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=[value], help_text=f"String representing the object's type: always `{value}`."
    )


def _timestamp(*, null: bool = False, help_text: str = "Unix seconds.") -> serializers.Field:
    return serializers.IntegerField(allow_null=null, help_text=help_text)


def _text(
    *, null: bool = False, required: bool = True, help_text: str = ""
) -> serializers.CharField:
    return serializers.CharField(allow_null=null, required=required, help_text=help_text)


def _amount(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        help_text=f"{help_text} In the currency's smallest unit (cents for USD, yen for JPY)."
    )


def _currency() -> serializers.CharField:
    return serializers.CharField(help_text="Three-letter ISO 4217 code, lower case.")


def _livemode() -> serializers.BooleanField:
    return serializers.BooleanField(help_text="Always false: PayLab has test mode only.")


class Metadata(serializers.DictField):
    """Up to 50 string keys with string values."""

    child = serializers.CharField()


class Expandable(serializers.Field):
    """Stripe's expandable field: the related object's id, or the object
    itself when the request names the field in `expand`."""

    def __init__(self, target: type[serializers.Serializer] | str, **kwargs: Any) -> None:
        # A class name (of this module) where the classes refer to each other.
        self.target = target
        super().__init__(**kwargs)

    def target_class(self) -> type[serializers.Serializer]:
        found = globals()[self.target] if isinstance(self.target, str) else self.target
        assert isinstance(found, type)
        return found


class ExpandableExtension(OpenApiSerializerFieldExtension):
    target_class = Expandable

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        component = auto_schema.resolve_serializer(self.target.target_class(), direction)
        return {"anyOf": [{"type": "string"}, component.ref]}


class MetadataFieldExtension(OpenApiSerializerFieldExtension):
    """`payments.api.fields.MetadataField`: a map of strings (or "" to clear)."""

    target_class = "payments.api.fields.MetadataField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        pairs = {
            "type": "object",
            "additionalProperties": {
                "type": "string",
                "maxLength": metadata_rules.MAX_VALUE_LENGTH,
            },
            "maxProperties": metadata_rules.MAX_KEYS,
        }
        return {
            "anyOf": [pairs, {"type": "string", "enum": [""]}],
            "description": f"Up to {metadata_rules.MAX_KEYS} keys of at most "
            f"{metadata_rules.MAX_KEY_LENGTH} characters. An empty value deletes its key; "
            "an empty `metadata` clears them all.",
        }


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """`accounts.authentication.ApiKeyAuthentication`: the secret key as the
    HTTP Basic username (what Stripe's libraries send) or as a Bearer token.

    Priority 1 so it wins over the Basic-only description in accounts/api.py.
    """

    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = ["basicAuth", "bearerAuth"]
    priority = 1

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        # Either scheme is enough (OR), not both (AND).
        return [{"basicAuth": []}, {"bearerAuth": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {
                "type": "http",
                "scheme": "basic",
                "description": "Your secret key `sk_test_…` as the username, empty password.",
            },
            {
                "type": "http",
                "scheme": "bearer",
                "description": "`Authorization: Bearer sk_test_…`.",
            },
        ]


# --- Objects (mirror payments/presenters.py) -------------------------------------


class CustomerSerializer(serializers.Serializer):
    id = _text(help_text="`cus_…`")
    object = _const("customer")
    created = _timestamp()
    description = _text(null=True)
    email = _text(null=True)
    livemode = _livemode()
    metadata = Metadata()
    name = _text(null=True)
    phone = _text(null=True)


class DeletedCustomerSerializer(serializers.Serializer):
    id = _text(help_text="`cus_…`")
    object = _const("customer")
    deleted = serializers.BooleanField(help_text="Always true.")


class BalanceTransactionFeeSerializer(serializers.Serializer):
    amount = _amount("The fee.")
    currency = _currency()
    description = _text()
    type = serializers.ChoiceField(choices=["stripe_fee"])


class BalanceTransactionSerializer(serializers.Serializer):
    id = _text(help_text="`txn_…`")
    object = _const("balance_transaction")
    amount = _amount("Gross amount of the movement; negative for refunds and disputes.")
    available_on = _timestamp()
    created = _timestamp()
    currency = _currency()
    description = _text(null=True)
    fee = _amount("Fees paid for this movement.")
    fee_details = BalanceTransactionFeeSerializer(many=True)
    net = _amount("`amount` less `fee`: the change to the merchant's balance.")
    reporting_category = serializers.ChoiceField(choices=LedgerTransaction.Type.values)
    # DRF pops declared fields off the class, so a field may bear the name of
    # a Field/Serializer attribute (`source`, `data`); mypy cannot know that.
    source = _text(help_text="The charge, refund or dispute that caused it.")  # type: ignore[assignment]
    status = serializers.ChoiceField(choices=["available"])
    # Stripe calls a dispute reversal an `adjustment`.
    type = serializers.ChoiceField(
        choices=[
            *(t for t in LedgerTransaction.Type.values if t != "dispute_reversal"),
            "adjustment",
        ]
    )


class BillingDetailsSerializer(serializers.Serializer):
    address = serializers.JSONField(allow_null=True)
    email = _text(null=True)
    name = _text(null=True)
    phone = _text(null=True)


class CardChecksSerializer(serializers.Serializer):
    address_line1_check = _text(null=True)
    address_postal_code_check = _text(null=True)
    cvc_check = _text(null=True)


class ThreeDSecureUsageSerializer(serializers.Serializer):
    supported = serializers.BooleanField()


class CardDetailsSerializer(serializers.Serializer):
    brand = _text(help_text="`visa`, `mastercard`, `amex`, …")
    country = _text(null=True)
    exp_month = serializers.IntegerField()
    exp_year = serializers.IntegerField()
    fingerprint = _text(help_text="Identifies the card number; equal numbers, equal prints.")
    funding = _text(help_text="`credit`, `debit`, `prepaid` or `unknown`.")
    last4 = _text()
    checks = CardChecksSerializer()
    three_d_secure_usage = ThreeDSecureUsageSerializer()


class PaymentMethodSerializer(serializers.Serializer):
    id = _text(help_text="`pm_…`")
    object = _const("payment_method")
    billing_details = BillingDetailsSerializer()
    created = _timestamp()
    customer = Expandable(CustomerSerializer, allow_null=True)
    livemode = _livemode()
    metadata = Metadata()
    type = serializers.ChoiceField(choices=PaymentMethod.Type.values)
    card = CardDetailsSerializer(required=False, help_text="Present when `type` is `card`.")
    upi = serializers.JSONField(required=False, help_text="Present when `type` is `upi`.")
    wallet = serializers.JSONField(required=False, help_text="Present when `type` is `wallet`.")


class ChargeOutcomeSerializer(serializers.Serializer):
    network_status = _text(null=True)
    reason = _text(null=True, help_text="The decline code when declined.")
    risk_level = _text(null=True)
    seller_message = _text(null=True)
    type = _text(help_text="`authorized`, `issuer_declined`, `blocked`, …")


class ProcessorAttemptsSerializer(serializers.Serializer):
    processor = _text(help_text="The processor that answered (the last attempt).")
    routing = serializers.JSONField(
        allow_null=True,
        help_text="The routing decision: `{rule, candidates, skipped: [{processor, reason}]}`.",
    )
    attempts = serializers.ListField(
        child=serializers.JSONField(),
        help_text="Every processor attempt, in order: `{processor, latency_ms, result "
        "(approved|declined|soft_declined|blocked|error), code, retryable, cause, probe}`.",
    )
    latency_ms = serializers.IntegerField(help_text="Simulated processor time, all attempts.")
    simulate = _text(required=False, help_text="The `PayLab-Simulate` directives applied.")
    capture_attempts = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        help_text="Captures that failed by a `PayLab-Simulate` directive at capture.",
    )


class ChargeSerializer(serializers.Serializer):
    id = _text(help_text="`ch_…`")
    object = _const("charge")
    amount = _amount("Amount authorised.")
    amount_captured = _amount("Amount captured.")
    amount_refunded = _amount("Amount refunded.")
    balance_transaction = Expandable(BalanceTransactionSerializer, allow_null=True)
    captured = serializers.BooleanField()
    created = _timestamp()
    currency = _currency()
    customer = Expandable(CustomerSerializer, allow_null=True)
    disputed = serializers.BooleanField()
    failure_code = _text(null=True)
    failure_message = _text(null=True)
    livemode = _livemode()
    metadata = Metadata()
    outcome = ChargeOutcomeSerializer(allow_null=True)
    paid = serializers.BooleanField()
    payment_intent = Expandable("PaymentIntentSerializer")
    payment_method = Expandable(PaymentMethodSerializer)
    payment_method_details = serializers.JSONField(
        help_text="`{type: card, card: {brand, last4, …}}` as used for this attempt."
    )
    refunded = serializers.BooleanField()
    status = serializers.ChoiceField(choices=Charge.Status.values)
    paylab = ProcessorAttemptsSerializer(
        required=False, help_text="PayLab only: the processor and every attempt made."
    )


class NextActionRedirectSerializer(serializers.Serializer):
    url = _text(help_text="The hosted 3-D Secure challenge page.")
    return_url = _text(null=True)


class NextActionSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["redirect_to_url"])
    redirect_to_url = NextActionRedirectSerializer()


class LastPaymentErrorSerializer(serializers.Serializer):
    type = _text()
    code = _text(null=True)
    decline_code = _text(null=True)
    message = _text()
    charge = _text(required=False)
    payment_method = PaymentMethodSerializer(required=False, allow_null=True)


class PaymentIntentSerializer(serializers.Serializer):
    id = _text(help_text="`pi_…`")
    object = _const("payment_intent")
    amount = _amount("Amount intended to be collected.")
    amount_capturable = _amount("Amount that can be captured now.")
    amount_received = _amount("Amount captured.")
    canceled_at = _timestamp(null=True)
    cancellation_reason = serializers.ChoiceField(
        # `automatic`: the authorisation expired.
        choices=[*CANCELLATION_REASONS, "automatic"],
        allow_null=True,
    )
    capture_method = serializers.ChoiceField(choices=CaptureMethod.values)
    client_secret = _text(help_text="For the customer's side (hosted pages); keep it private.")
    confirmation_method = serializers.ChoiceField(choices=["automatic"])
    created = _timestamp()
    currency = _currency()
    customer = Expandable(CustomerSerializer, allow_null=True)
    description = _text(null=True)
    last_payment_error = LastPaymentErrorSerializer(allow_null=True)
    latest_charge = Expandable(ChargeSerializer, allow_null=True)
    livemode = _livemode()
    metadata = Metadata()
    next_action = NextActionSerializer(allow_null=True)
    payment_method = Expandable(PaymentMethodSerializer, allow_null=True)
    payment_method_types = serializers.ListField(child=serializers.CharField())
    receipt_email = _text(null=True)
    statement_descriptor = _text(null=True)
    status = serializers.ChoiceField(choices=Status.values)


class RefundSerializer(serializers.Serializer):
    id = _text(help_text="`re_…`")
    object = _const("refund")
    amount = _amount("Amount refunded.")
    balance_transaction = Expandable(BalanceTransactionSerializer, allow_null=True)
    charge = Expandable(ChargeSerializer)
    created = _timestamp()
    currency = _currency()
    failure_reason = _text(null=True)
    metadata = Metadata()
    payment_intent = Expandable(PaymentIntentSerializer)
    reason = serializers.ChoiceField(choices=REFUND_REASONS, allow_null=True)
    status = serializers.ChoiceField(choices=Refund.Status.values)


class DisputeSerializer(serializers.Serializer):
    id = _text(help_text="`dp_…`")
    object = _const("dispute")
    amount = _amount("Amount disputed.")
    charge = Expandable(ChargeSerializer)
    created = _timestamp()
    currency = _currency()
    is_charge_refundable = serializers.BooleanField()
    livemode = _livemode()
    metadata = Metadata()
    payment_intent = Expandable(PaymentIntentSerializer)
    reason = _text(help_text="`fraudulent`, `product_not_received`, …")
    status = serializers.ChoiceField(choices=Dispute.Status.values)


class EventDataSerializer(serializers.Serializer):
    object = serializers.JSONField(help_text="The object as it was when the event happened.")


class EventRequestInfoSerializer(serializers.Serializer):
    id = _text(null=True)
    idempotency_key = _text(null=True)


class EventSerializer(serializers.Serializer):
    id = _text(help_text="`evt_…`")
    object = _const("event")
    api_version = _text()
    created = _timestamp()
    data = EventDataSerializer()  # type: ignore[assignment]  # see `source` above
    livemode = _livemode()
    pending_webhooks = serializers.IntegerField()
    request = EventRequestInfoSerializer(help_text="The API request that caused the event.")
    type = _text(help_text="`payment_intent.succeeded`, `charge.refunded`, …")


class BalanceAmountSerializer(serializers.Serializer):
    amount = _amount("Balance.")
    currency = _currency()
    source_types = serializers.DictField(child=serializers.IntegerField())


class BalanceSerializer(serializers.Serializer):
    object = _const("balance")
    available = BalanceAmountSerializer(many=True)
    pending = BalanceAmountSerializer(many=True)
    livemode = _livemode()


class WebhookEndpointSerializer(serializers.Serializer):
    id = _text(help_text="`we_…`")
    object = _const("webhook_endpoint")
    api_version = _text(null=True)
    application = _text(null=True)
    created = _timestamp()
    description = _text(null=True)
    enabled_events = serializers.ListField(
        child=serializers.CharField(), help_text="Event types sent to it; `*` for all."
    )
    livemode = _livemode()
    metadata = Metadata()
    status = serializers.ChoiceField(choices=["enabled", "disabled"])
    url = _text()
    disabled_reason = _text(
        null=True, help_text="PayLab only: why PayLab disabled it (failing for too long)."
    )
    secret = _text(
        required=False,
        help_text="`whsec_…`, only in the answers to create and roll_secret.",
    )


class DeletedWebhookEndpointSerializer(serializers.Serializer):
    id = _text(help_text="`we_…`")
    object = _const("webhook_endpoint")
    deleted = serializers.BooleanField(help_text="Always true.")


class WebhookResendResultSerializer(serializers.Serializer):
    object = _const("webhook_resend")
    webhook_endpoint = _text(help_text="`we_…`")
    deliveries = serializers.IntegerField(help_text="How many deliveries were queued.")


CustomerOrDeleted = PolymorphicProxySerializer(
    component_name="CustomerOrDeleted",
    serializers=[CustomerSerializer, DeletedCustomerSerializer],
    resource_type_field_name=None,
)


@cache
def list_of(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """Stripe's list object around `item` (one class per item: one component)."""
    name = item.__name__.removesuffix("Serializer")
    return type(
        f"{name}ListSerializer",
        (serializers.Serializer,),
        {
            "object": _const("list"),
            "data": item(many=True),
            "has_more": serializers.BooleanField(
                help_text="Whether another page follows this one."
            ),
            "url": _text(help_text="The URL of this list."),
            "__doc__": f"A page of {name} objects, newest first.",
        },
    )


# --- Errors ----------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=["api_error", "card_error", "idempotency_error", "invalid_request_error"]
    )
    message = _text(help_text="Human-readable; may be shown to the customer for card errors.")
    code = _text(required=False, help_text="`parameter_unknown`, `resource_missing`, …")
    param = _text(required=False, help_text="The parameter at fault, in bracket form.")
    decline_code = _text(required=False, help_text="The issuer's reason, for card declines.")
    charge = _text(required=False, help_text="The failed charge, for card declines.")
    payment_intent = PaymentIntentSerializer(
        required=False, help_text="The payment after the decline (create and confirm)."
    )
    payment_method = PaymentMethodSerializer(required=False, allow_null=True)


class ErrorSerializer(serializers.Serializer):
    """Every error PayLab answers on /v1/, in Stripe's envelope."""

    error = ErrorDetailSerializer()


_ERRORS = {
    400: "Invalid request: a missing, unknown or invalid parameter, an illegal state "
    "change (`payment_intent_unexpected_state`), or an `idempotency_error`.",
    401: "No API key, or a malformed, unknown, expired or revoked one.",
    402: "The card was declined (`card_error` with `decline_code`).",
    404: "No such object for this key's merchant (`resource_missing`); another "
    "merchant's object is missing too.",
    409: "Another request with the same `Idempotency-Key` is still in flight.",
    429: "Too many requests for this key (`rate_limit`); see `Retry-After`.",
}


def _error(status: int) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=_ERRORS[status])


# --- Parameters ------------------------------------------------------------------

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes the request safe to retry. The first response (status and body, declines "
        "included) is saved for 24 hours and replayed, with `Idempotent-Replayed: true`, "
        "for a retry with the same key. Keys are scoped to the merchant; reusing one with "
        "other parameters or on another endpoint is an `idempotency_error`; a retry while "
        "the first request is still running waits for it or answers 409."
    ),
)

EXPAND = OpenApiParameter(
    "expand[]",
    build_array_type({"type": "string"}),
    OpenApiParameter.QUERY,
    required=False,
    explode=True,
    description="Related objects to inline instead of their ids, e.g. `customer`, "
    "`latest_charge.balance_transaction`; in lists prefix with `data.`.",
)

_LIST_BASE = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        OpenApiParameter.QUERY,
        description="How many objects to return, 1 to 100.",
    ),
    OpenApiParameter(
        "starting_after",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        description="An object id: the page after it (older objects).",
    ),
    OpenApiParameter(
        "ending_before",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        description="An object id: the page before it (newer objects).",
    ),
    OpenApiParameter(
        "created",
        {
            "type": "object",
            "properties": {
                op: {"type": "integer", "description": f"Created {label} (Unix seconds)."}
                for op, label in (
                    ("gt", "after"),
                    ("gte", "at or after"),
                    ("lt", "before"),
                    ("lte", "at or before"),
                )
            },
            "additionalProperties": False,
        },
        OpenApiParameter.QUERY,
        style="deepObject",
        explode=True,
        description="`created[gte]=…&created[lt]=…`; `created=…` matches one second exactly.",
    ),
    EXPAND,
]


def _query_parameter(name: str, field: serializers.Field) -> OpenApiParameter:
    description = str(field.help_text or "")
    if isinstance(field, serializers.ListField):
        return OpenApiParameter(
            f"{name}[]",
            build_array_type({"type": "string"}),
            OpenApiParameter.QUERY,
            required=field.required,
            explode=True,
            description=description,
        )
    if isinstance(field, serializers.ChoiceField):
        return OpenApiParameter(
            name,
            OpenApiTypes.STR,
            OpenApiParameter.QUERY,
            required=field.required,
            enum=list(field.choices),
            description=description,
        )
    return OpenApiParameter(
        name,
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        required=field.required,
        description=description,
    )


def list_parameters(list_serializer: type[serializers.Serializer]) -> list[OpenApiParameter]:
    """Stripe's list parameters plus the filters `list_serializer` adds."""
    common = set(ListParamsSerializer._declared_fields)
    extra = [
        _query_parameter(name, field)
        for name, field in list_serializer._declared_fields.items()
        if name not in common
    ]
    return [*_LIST_BASE, *extra]


def _path_id(prefix: str, noun: str) -> OpenApiParameter:
    return OpenApiParameter(
        "id", OpenApiTypes.STR, OpenApiParameter.PATH, description=f"The {noun}'s id (`{prefix}…`)."
    )


# --- Operations ------------------------------------------------------------------

_NESTED = (
    MetadataField,
    serializers.BaseSerializer,
    serializers.DictField,
    serializers.JSONField,
    serializers.ListField,
)


def request_body(serializer: type[serializers.Serializer]) -> dict[str, Any]:
    """The body as JSON or as Stripe's form encoding, where nested parameters
    are bracketed (`metadata[order]=42`, `expand[]=customer`): OpenAPI's
    deepObject style."""
    nested = {
        name: {"style": "deepObject", "explode": True}
        for name, field in serializer._declared_fields.items()
        if isinstance(field, _NESTED)
    }
    return {
        "application/x-www-form-urlencoded": OpenApiRequest(serializer, encoding=nested or None),
        "application/json": serializer,
    }


def operation(
    operation_id: str,
    *,
    summary: str,
    tag: str,
    response: Any,
    request: type[serializers.Serializer] | None = None,
    query: type[serializers.Serializer] | None = None,
    path_id: tuple[str, str] | None = None,
    write: bool = False,
    declines: bool = False,
    description: str = "",
) -> Any:
    """`extend_schema` for one /v1/ operation.

    `query`: the view's list serializer (GET lists); `path_id`: (id prefix,
    noun) when the URL names an object; `write`: a POST/DELETE (Idempotency-Key,
    409, and 404 for objects named in the body); `declines`: may answer 402.
    """
    parameters: list[OpenApiParameter] = []
    statuses = [400, 401]
    if query is not None:
        parameters.extend(list_parameters(query))
        default = "A list object, newest first; page with `starting_after` or `ending_before`."
    elif write:
        default = "Returns the object as it is after the change."
    else:
        parameters.append(EXPAND)
        default = "`expand[]` inlines related objects instead of their ids."
    if path_id is not None:
        parameters.append(_path_id(*path_id))
    if write:
        parameters.append(IDEMPOTENCY_KEY)
        statuses.append(409)
    if declines:
        statuses.append(402)
    if path_id is not None or write:
        statuses.append(404)
    statuses.append(429)
    responses: dict[int, Any] = {200: OpenApiResponse(response, description="OK")}
    responses.update({status: _error(status) for status in sorted(statuses)})
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        # Without one, spectacular would fall back to StripeApi's docstring.
        description=description or default,
        tags=[tag],
        request=request_body(request) if request is not None else None,
        parameters=parameters,
        responses=responses,
    )
