"""/v1/refunds, /v1/customers, /v1/payment_methods, and the read-only
resources: charges, disputes, events, balance, balance transactions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_view
from rest_framework.request import Request

from payments import presenters, selectors
from payments.api import schema
from payments.api import serializers as s
from payments.api.base import Body, StripeApi, list_object
from payments.api.intents import simulate_header
from payments.models import (
    Charge,
    Customer,
    Dispute,
    Event,
    LedgerTransaction,
    PaymentMethod,
    Refund,
)
from payments.services import customers, payment_methods, refunds

Params = dict[str, Any]


class RetrieveApi(StripeApi):
    """GET /v1/<resource>/{id}: one merchant-scoped object."""

    model: Any = None
    presenter: Any = None
    serializers = {"GET": s.ExpandOnlySerializer}

    def perform_get(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        found = selectors.get_object(
            self.model, merchant_id=self.merchant_id(request), object_id=id
        )
        return 200, type(self).presenter(found, params.get("expand"))


# --- Refunds -------------------------------------------------------------------


@extend_schema_view(
    get=schema.operation(
        "ListRefunds",
        summary="List refunds",
        tag="Refunds",
        query=s.RefundListSerializer,
        response=schema.list_of(schema.RefundSerializer),
    ),
    post=schema.operation(
        "CreateRefund",
        summary="Create a refund",
        description=(
            "All or part of what is left of a captured payment; name `payment_intent` or `charge`."
            " A `PayLab-Simulate` header (or the payment's `metadata[paylab_simulate]`) with"
            " `at=refund` forces the refund to fail when it settles (`decline=…`,"
            " `processor_error=…`) or answers an HTTP status (`http=…`)."
        ),
        tag="Refunds",
        request=s.RefundCreateSerializer,
        response=schema.RefundSerializer,
        write=True,
    ),
)
class RefundCollectionApi(StripeApi):
    serializers = {"GET": s.RefundListSerializer, "POST": s.RefundCreateSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        query = selectors.refunds(
            self.merchant_id(request),
            payment_intent=params.get("payment_intent"),
            charge=params.get("charge"),
        )
        return 200, list_object(request, query, params, presenters.refund)

    def perform_post(self, request: Request, params: Params) -> tuple[int, Body]:
        expand = params.pop("expand", None)
        refund = refunds.refund_create(
            merchant=self.client(request).merchant,
            simulate=simulate_header(self, request),
            **params,
        )
        return 200, presenters.refund(refund, expand)


@extend_schema_view(
    get=schema.operation(
        "RetrieveRefund",
        summary="Retrieve a refund",
        tag="Refunds",
        path_id=("re_", "refund"),
        response=schema.RefundSerializer,
    ),
)
class RefundApi(RetrieveApi):
    model, presenter = Refund, presenters.refund


# --- Customers -----------------------------------------------------------------


@extend_schema_view(
    get=schema.operation(
        "ListCustomers",
        summary="List customers",
        tag="Customers",
        query=s.CustomerListSerializer,
        response=schema.list_of(schema.CustomerSerializer),
    ),
    post=schema.operation(
        "CreateCustomer",
        summary="Create a customer",
        tag="Customers",
        request=s.CustomerSerializer,
        response=schema.CustomerSerializer,
        write=True,
    ),
)
class CustomerCollectionApi(StripeApi):
    serializers = {"GET": s.CustomerListSerializer, "POST": s.CustomerSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        query = selectors.customers(self.merchant_id(request), email=params.get("email"))
        return 200, list_object(request, query, params, presenters.customer)

    def perform_post(self, request: Request, params: Params) -> tuple[int, Body]:
        expand = params.pop("expand", None)
        metadata = params.pop("metadata", None)
        customer = customers.customer_create(
            merchant=self.client(request).merchant, fields=params, metadata=metadata
        )
        return 200, presenters.customer(customer, expand)


@extend_schema_view(
    get=schema.operation(
        "RetrieveCustomer",
        summary="Retrieve a customer",
        description="A deleted customer answers `{id, object, deleted: true}`.",
        tag="Customers",
        path_id=("cus_", "customer"),
        response=schema.CustomerOrDeleted,
    ),
    post=schema.operation(
        "UpdateCustomer",
        summary="Update a customer",
        tag="Customers",
        request=s.CustomerSerializer,
        path_id=("cus_", "customer"),
        response=schema.CustomerSerializer,
        write=True,
    ),
    delete=schema.operation(
        "DeleteCustomer",
        summary="Delete a customer",
        description="Payments keep pointing at it; it no longer appears in lists.",
        tag="Customers",
        path_id=("cus_", "customer"),
        response=schema.DeletedCustomerSerializer,
        write=True,
    ),
)
class CustomerApi(StripeApi):
    serializers = {
        "GET": s.ExpandOnlySerializer,
        "POST": s.CustomerSerializer,
        "DELETE": s.ExpandOnlySerializer,
    }

    def perform_get(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        found = selectors.get_object(Customer, merchant_id=self.merchant_id(request), object_id=id)
        return 200, presenters.customer(found, params.get("expand"))

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        expand = params.pop("expand", None)
        metadata = params.pop("metadata", None)
        updated = customers.customer_update(
            merchant=self.client(request).merchant, customer_id=id, fields=params, metadata=metadata
        )
        return 200, presenters.customer(updated, expand)

    def perform_delete(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        deleted = customers.customer_delete(merchant=self.client(request).merchant, customer_id=id)
        return 200, {"id": deleted.id, "object": "customer", "deleted": True}


@extend_schema_view(
    get=schema.operation(
        "ListCustomerPaymentMethods",
        summary="List a customer's payment methods",
        tag="Payment methods",
        query=s.CustomerPaymentMethodListSerializer,
        path_id=("cus_", "customer"),
        response=schema.list_of(schema.PaymentMethodSerializer),
    ),
)
class CustomerPaymentMethodsApi(StripeApi):
    serializers = {"GET": s.CustomerPaymentMethodListSerializer}

    def perform_get(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        merchant_id = self.merchant_id(request)
        selectors.get_object(Customer, merchant_id=merchant_id, object_id=id)
        query = selectors.payment_methods(merchant_id, customer=id, type=params.get("type"))
        return 200, list_object(request, query, params, presenters.payment_method)


# --- Payment methods -------------------------------------------------------------


@extend_schema_view(
    get=schema.operation(
        "ListPaymentMethods",
        summary="List a customer's payment methods (by `customer`)",
        tag="Payment methods",
        query=s.PaymentMethodListSerializer,
        response=schema.list_of(schema.PaymentMethodSerializer),
    ),
    post=schema.operation(
        "CreatePaymentMethod",
        summary="Create a payment method",
        description="A test card number that fails validation (Luhn, expiry, CVC) answers 402.",
        tag="Payment methods",
        request=s.PaymentMethodCreateSerializer,
        response=schema.PaymentMethodSerializer,
        write=True,
        declines=True,
    ),
)
class PaymentMethodCollectionApi(StripeApi):
    serializers = {"GET": s.PaymentMethodListSerializer, "POST": s.PaymentMethodCreateSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        query = selectors.payment_methods(
            self.merchant_id(request), customer=params["customer"], type=params.get("type")
        )
        return 200, list_object(request, query, params, presenters.payment_method)

    def perform_post(self, request: Request, params: Params) -> tuple[int, Body]:
        kind = params["type"]
        pm = payment_methods.payment_method_create(
            merchant=self.client(request).merchant,
            type=kind,
            data=params.get(kind),
            billing_details=params.get("billing_details"),
            metadata=params.get("metadata"),
        )
        return 200, presenters.payment_method(pm, params.get("expand"))


@extend_schema_view(
    get=schema.operation(
        "RetrievePaymentMethod",
        summary="Retrieve a payment method",
        tag="Payment methods",
        path_id=("pm_", "payment method"),
        response=schema.PaymentMethodSerializer,
    ),
)
class PaymentMethodApi(RetrieveApi):
    model, presenter = PaymentMethod, presenters.payment_method


@extend_schema_view(
    post=schema.operation(
        "AttachPaymentMethod",
        summary="Attach a payment method to a customer",
        tag="Payment methods",
        request=s.PaymentMethodAttachSerializer,
        path_id=("pm_", "payment method"),
        response=schema.PaymentMethodSerializer,
        write=True,
    ),
)
class PaymentMethodAttachApi(StripeApi):
    serializers = {"POST": s.PaymentMethodAttachSerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        pm = payment_methods.payment_method_attach(
            merchant=self.client(request).merchant,
            payment_method_id=id,
            customer_id=params["customer"],
        )
        return 200, presenters.payment_method(pm, params.get("expand"))


@extend_schema_view(
    post=schema.operation(
        "DetachPaymentMethod",
        summary="Detach a payment method from its customer",
        tag="Payment methods",
        request=s.ExpandOnlySerializer,
        path_id=("pm_", "payment method"),
        response=schema.PaymentMethodSerializer,
        write=True,
    ),
)
class PaymentMethodDetachApi(StripeApi):
    serializers = {"POST": s.ExpandOnlySerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        pm = payment_methods.payment_method_detach(
            merchant=self.client(request).merchant, payment_method_id=id
        )
        return 200, presenters.payment_method(pm, params.get("expand"))


# --- Read-only resources -----------------------------------------------------------


@extend_schema_view(
    get=schema.operation(
        "ListCharges",
        summary="List charges",
        tag="Charges",
        query=s.ChargeListSerializer,
        response=schema.list_of(schema.ChargeSerializer),
    ),
)
class ChargeCollectionApi(StripeApi):
    serializers = {"GET": s.ChargeListSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        query = selectors.scoped(Charge, self.merchant_id(request))
        if params.get("payment_intent"):
            query = query.filter(payment_intent_id=params["payment_intent"])
        return 200, list_object(request, query, params, presenters.charge)


@extend_schema_view(
    get=schema.operation(
        "RetrieveCharge",
        summary="Retrieve a charge",
        tag="Charges",
        path_id=("ch_", "charge"),
        response=schema.ChargeSerializer,
    ),
)
class ChargeApi(RetrieveApi):
    model, presenter = Charge, presenters.charge


@extend_schema_view(
    get=schema.operation(
        "ListDisputes",
        summary="List disputes",
        tag="Disputes",
        query=s.DisputeListSerializer,
        response=schema.list_of(schema.DisputeSerializer),
    ),
)
class DisputeCollectionApi(StripeApi):
    serializers = {"GET": s.DisputeListSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        query = selectors.scoped(Dispute, self.merchant_id(request))
        if params.get("payment_intent"):
            query = query.filter(payment_intent_id=params["payment_intent"])
        if params.get("charge"):
            query = query.filter(charge_id=params["charge"])
        return 200, list_object(request, query, params, presenters.dispute)


@extend_schema_view(
    get=schema.operation(
        "RetrieveDispute",
        summary="Retrieve a dispute",
        tag="Disputes",
        path_id=("dp_", "dispute"),
        response=schema.DisputeSerializer,
    ),
)
class DisputeApi(RetrieveApi):
    model, presenter = Dispute, presenters.dispute


@extend_schema_view(
    get=schema.operation(
        "ListEvents",
        summary="List events",
        tag="Events",
        query=s.EventListSerializer,
        response=schema.list_of(schema.EventSerializer),
    ),
)
class EventCollectionApi(StripeApi):
    serializers = {"GET": s.EventListSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        types = list(params.get("types") or []) + ([params["type"]] if params.get("type") else [])
        query = selectors.events(self.merchant_id(request), types=types)
        return 200, list_object(request, query, params, presenters.event)


@extend_schema_view(
    get=schema.operation(
        "RetrieveEvent",
        summary="Retrieve an event",
        tag="Events",
        path_id=("evt_", "event"),
        response=schema.EventSerializer,
    ),
)
class EventApi(RetrieveApi):
    model, presenter = Event, presenters.event


@extend_schema_view(
    get=schema.operation(
        "RetrieveBalance",
        summary="Retrieve the balance",
        description="Derived from the ledger, per currency.",
        tag="Balance",
        response=schema.BalanceSerializer,
    ),
)
class BalanceApi(StripeApi):
    serializers = {"GET": s.ExpandOnlySerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        return 200, presenters.balance(selectors.merchant_balance(self.merchant_id(request)), {})


@extend_schema_view(
    get=schema.operation(
        "ListBalanceTransactions",
        summary="List balance transactions",
        tag="Balance",
        query=s.BalanceTransactionListSerializer,
        response=schema.list_of(schema.BalanceTransactionSerializer),
    ),
)
class BalanceTransactionCollectionApi(StripeApi):
    serializers = {"GET": s.BalanceTransactionListSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        query = selectors.balance_transactions(
            self.merchant_id(request), type=params.get("type"), source=params.get("source")
        )
        if params.get("currency"):
            query = query.filter(currency=params["currency"].lower())
        return 200, list_object(request, query, params, presenters.balance_transaction)


@extend_schema_view(
    get=schema.operation(
        "RetrieveBalanceTransaction",
        summary="Retrieve a balance transaction",
        tag="Balance",
        path_id=("txn_", "balance transaction"),
        response=schema.BalanceTransactionSerializer,
    ),
)
class BalanceTransactionApi(RetrieveApi):
    model, presenter = LedgerTransaction, presenters.balance_transaction
