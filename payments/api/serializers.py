"""Input serializers, one per operation that takes a body (STYLE 8)."""

from __future__ import annotations

from rest_framework import serializers

from payments.api.fields import (
    AmountField,
    ExpandField,
    MetadataField,
    StripeSerializer,
    list_params,
)
from payments.models.intents import CaptureMethod


class CardSerializer(StripeSerializer):
    number = serializers.CharField(max_length=30, trim_whitespace=True)
    exp_month = serializers.IntegerField(min_value=1, max_value=12)
    exp_year = serializers.IntegerField(min_value=0, max_value=9999)
    cvc = serializers.CharField(max_length=4, required=False, allow_blank=True)


PAYMENT_METHOD_TYPES = ["card", "upi", "wallet"]


class UpiSerializer(StripeSerializer):
    vpa = serializers.CharField(
        max_length=320,
        help_text="A UPI VPA, name@bank. Test VPAs: success@paylab (succeeds after 3 s), "
        "failure@paylab (fails after 3 s), slow@paylab (succeeds after 30 s).",
    )


class WalletSerializer(StripeSerializer):
    type = serializers.ChoiceField(
        choices=["paylab_wallet", "apple_pay", "google_pay"], required=False
    )


class PaymentMethodDataSerializer(StripeSerializer):
    """A payment method made for this payment: the sub-hash named by `type`."""

    type = serializers.ChoiceField(choices=PAYMENT_METHOD_TYPES)
    card = CardSerializer(required=False)
    upi = UpiSerializer(required=False)
    wallet = WalletSerializer(required=False)
    billing_details = serializers.DictField(required=False)


def _method_types() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=PAYMENT_METHOD_TYPES),
        required=False,
        allow_empty=False,
        help_text="The payment method types this payment may be confirmed with. "
        "Default: the type of `payment_method` / `payment_method_data` when given, else card.",
    )


class AutomaticPaymentMethodsSerializer(StripeSerializer):
    enabled = serializers.BooleanField()
    allow_redirects = serializers.ChoiceField(choices=["always", "never"], required=False)


class PaymentIntentCreateSerializer(StripeSerializer):
    amount = AmountField()
    currency = serializers.CharField(max_length=3, min_length=3)
    capture_method = serializers.ChoiceField(choices=CaptureMethod.values, required=False)
    confirm = serializers.BooleanField(required=False, default=False)
    customer = serializers.CharField(max_length=64, required=False)
    payment_method = serializers.CharField(max_length=64, required=False)
    payment_method_data = PaymentMethodDataSerializer(required=False)
    payment_method_types = _method_types()
    description = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    metadata = MetadataField(required=False)
    receipt_email = serializers.EmailField(required=False, allow_blank=True)
    statement_descriptor = serializers.CharField(max_length=22, required=False, allow_blank=True)
    return_url = serializers.URLField(max_length=2000, required=False)
    # Accepted for compatibility with Stripe integrations; no effect here.
    automatic_payment_methods = AutomaticPaymentMethodsSerializer(required=False)
    setup_future_usage = serializers.ChoiceField(
        choices=["on_session", "off_session"], required=False
    )
    off_session = serializers.BooleanField(required=False)
    expand = ExpandField(required=False)


class PaymentIntentUpdateSerializer(StripeSerializer):
    amount = AmountField(required=False)
    currency = serializers.CharField(max_length=3, min_length=3, required=False)
    customer = serializers.CharField(max_length=64, required=False, allow_blank=True)
    payment_method = serializers.CharField(max_length=64, required=False)
    payment_method_types = _method_types()
    description = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    metadata = MetadataField(required=False)
    receipt_email = serializers.EmailField(required=False, allow_blank=True)
    statement_descriptor = serializers.CharField(max_length=22, required=False, allow_blank=True)
    expand = ExpandField(required=False)


class PaymentIntentConfirmSerializer(StripeSerializer):
    payment_method = serializers.CharField(max_length=64, required=False)
    payment_method_data = PaymentMethodDataSerializer(required=False)
    return_url = serializers.URLField(max_length=2000, required=False)
    off_session = serializers.BooleanField(required=False)
    expand = ExpandField(required=False)


class PaymentIntentCaptureSerializer(StripeSerializer):
    amount_to_capture = AmountField(required=False)
    expand = ExpandField(required=False)


class PaymentIntentCancelSerializer(StripeSerializer):
    cancellation_reason = serializers.ChoiceField(
        choices=["duplicate", "fraudulent", "requested_by_customer", "abandoned"], required=False
    )
    expand = ExpandField(required=False)


class RefundCreateSerializer(StripeSerializer):
    payment_intent = serializers.CharField(max_length=64, required=False)
    charge = serializers.CharField(max_length=64, required=False)
    amount = AmountField(required=False)
    reason = serializers.ChoiceField(
        choices=["duplicate", "fraudulent", "requested_by_customer"], required=False
    )
    metadata = MetadataField(required=False)
    expand = ExpandField(required=False)


class CustomerSerializer(StripeSerializer):
    email = serializers.EmailField(required=False, allow_blank=True)
    name = serializers.CharField(max_length=256, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    metadata = MetadataField(required=False)
    expand = ExpandField(required=False)


class PaymentMethodCreateSerializer(StripeSerializer):
    type = serializers.ChoiceField(choices=PAYMENT_METHOD_TYPES)
    # A raw card or {"token": "pm_card_visa"}; checked by the service.
    card = serializers.DictField(required=False)
    upi = UpiSerializer(required=False)
    wallet = WalletSerializer(required=False)
    billing_details = serializers.DictField(required=False)
    metadata = MetadataField(required=False)
    expand = ExpandField(required=False)


class PaymentMethodAttachSerializer(StripeSerializer):
    customer = serializers.CharField(max_length=64)
    expand = ExpandField(required=False)


class ExpandOnlySerializer(StripeSerializer):
    expand = ExpandField(required=False)


PaymentIntentListSerializer = list_params(
    customer=serializers.CharField(max_length=64, required=False)
)
RefundListSerializer = list_params(
    payment_intent=serializers.CharField(max_length=64, required=False),
    charge=serializers.CharField(max_length=64, required=False),
)
CustomerListSerializer = list_params(email=serializers.CharField(max_length=512, required=False))
PaymentMethodListSerializer = list_params(
    customer=serializers.CharField(max_length=64),
    type=serializers.ChoiceField(choices=["card", "upi", "wallet"], required=False),
)
CustomerPaymentMethodListSerializer = list_params(
    type=serializers.ChoiceField(choices=["card", "upi", "wallet"], required=False),
)
EventListSerializer = list_params(
    type=serializers.CharField(max_length=64, required=False),
    types=serializers.ListField(child=serializers.CharField(max_length=64), required=False),
)
BalanceTransactionListSerializer = list_params(
    type=serializers.CharField(max_length=32, required=False),
    source=serializers.CharField(max_length=64, required=False),
    currency=serializers.CharField(max_length=3, required=False),
)
PlainListSerializer = list_params()
ChargeListSerializer = list_params(
    payment_intent=serializers.CharField(max_length=64, required=False)
)
DisputeListSerializer = list_params(
    payment_intent=serializers.CharField(max_length=64, required=False),
    charge=serializers.CharField(max_length=64, required=False),
)
