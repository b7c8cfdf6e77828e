"""The merchant API under /v1/, in Stripe's dialect.

Every route here is listed in tests/payments/api/test_tenancy.py, which
fails when a route exists that its table does not cover.
"""

from django.urls import path

from payments.api import intents as pi
from payments.api import processors as proc
from payments.api import resources as r
from payments.api import webhooks as wh
from payments.api.deferred import deferred

app_name = "api"

urlpatterns = [
    # PayLab's simulated processors (shared, not merchant-owned).
    path("simulator/processors", proc.ProcessorCollectionApi.as_view(), name="processors"),
    path(
        "simulator/processor_outages",
        proc.ProcessorOutageCollectionApi.as_view(),
        name="processor-outages",
    ),
    path("simulator/processors/<str:id>", proc.ProcessorApi.as_view(), name="processor"),
    path(
        "simulator/processors/<str:id>/force_open",
        proc.ProcessorForceOpenApi.as_view(),
        name="processor-force-open",
    ),
    path(
        "simulator/processors/<str:id>/reset",
        proc.ProcessorResetApi.as_view(),
        name="processor-reset",
    ),
    # Confirming and capturing may wait on a simulated processor: deferred()
    # awaits outside any thread or transaction (payments.api.deferred).
    path(
        "payment_intents",
        deferred(pi.PaymentIntentCollectionApi.as_view()),
        name="payment-intents",
    ),
    path("payment_intents/<str:id>", pi.PaymentIntentApi.as_view(), name="payment-intent"),
    path(
        "payment_intents/<str:id>/confirm",
        deferred(pi.PaymentIntentConfirmApi.as_view()),
        name="payment-intent-confirm",
    ),
    path(
        "payment_intents/<str:id>/capture",
        deferred(pi.PaymentIntentCaptureApi.as_view()),
        name="payment-intent-capture",
    ),
    path(
        "payment_intents/<str:id>/cancel",
        pi.PaymentIntentCancelApi.as_view(),
        name="payment-intent-cancel",
    ),
    path("refunds", r.RefundCollectionApi.as_view(), name="refunds"),
    path("refunds/<str:id>", r.RefundApi.as_view(), name="refund"),
    path("customers", r.CustomerCollectionApi.as_view(), name="customers"),
    path("customers/<str:id>", r.CustomerApi.as_view(), name="customer"),
    path(
        "customers/<str:id>/payment_methods",
        r.CustomerPaymentMethodsApi.as_view(),
        name="customer-payment-methods",
    ),
    path("payment_methods", r.PaymentMethodCollectionApi.as_view(), name="payment-methods"),
    path("payment_methods/<str:id>", r.PaymentMethodApi.as_view(), name="payment-method"),
    path(
        "payment_methods/<str:id>/attach",
        r.PaymentMethodAttachApi.as_view(),
        name="payment-method-attach",
    ),
    path(
        "payment_methods/<str:id>/detach",
        r.PaymentMethodDetachApi.as_view(),
        name="payment-method-detach",
    ),
    path("charges", r.ChargeCollectionApi.as_view(), name="charges"),
    path("charges/<str:id>", r.ChargeApi.as_view(), name="charge"),
    path("disputes", r.DisputeCollectionApi.as_view(), name="disputes"),
    path("disputes/<str:id>", r.DisputeApi.as_view(), name="dispute"),
    path("events", r.EventCollectionApi.as_view(), name="events"),
    path("events/<str:id>", r.EventApi.as_view(), name="event"),
    path("balance", r.BalanceApi.as_view(), name="balance"),
    path(
        "balance_transactions",
        r.BalanceTransactionCollectionApi.as_view(),
        name="balance-transactions",
    ),
    path(
        "balance_transactions/<str:id>",
        r.BalanceTransactionApi.as_view(),
        name="balance-transaction",
    ),
    path("webhook_endpoints", wh.WebhookEndpointCollectionApi.as_view(), name="webhook-endpoints"),
    path("webhook_endpoints/<str:id>", wh.WebhookEndpointApi.as_view(), name="webhook-endpoint"),
    path(
        "webhook_endpoints/<str:id>/roll_secret",
        wh.WebhookEndpointRollSecretApi.as_view(),
        name="webhook-endpoint-roll-secret",
    ),
    path(
        "webhook_endpoints/<str:id>/resend",
        wh.WebhookEndpointResendApi.as_view(),
        name="webhook-endpoint-resend",
    ),
]
