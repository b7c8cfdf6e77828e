"""The account resource of the merchant API: `GET /v1/account`.

Stripe answers this with the account the secret key belongs to; the official
libraries call it (`stripe.Account.retrieve()`) to check that a key works.
Here the account is the key's merchant, so the endpoint needs no parameters
and cannot reach another merchant.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiClient
from accounts.models import Merchant

# Stripe caps statement descriptors at 22 characters.
_DESCRIPTOR_LENGTH = 22


def present_account(merchant: Merchant) -> dict[str, Any]:
    """The merchant as Stripe's `account` object (the shape is a contract)."""
    return {
        "id": f"acct_{merchant.pk}",
        "object": "account",
        "business_profile": {
            "name": merchant.name,
            "url": None,
            "support_email": None,
            "product_description": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "active" if merchant.is_active else "inactive"},
        "charges_enabled": merchant.is_active,
        "payouts_enabled": merchant.is_active,
        "details_submitted": True,
        "country": "US",
        "default_currency": "usd",
        "email": None,
        "created": int(merchant.created_at.timestamp()),
        "metadata": {"paylab_slug": merchant.slug},
        "settings": {
            "dashboard": {"display_name": merchant.name, "timezone": "Etc/UTC"},
            "payments": {"statement_descriptor": merchant.name.upper()[:_DESCRIPTOR_LENGTH]},
        },
        "type": "standard",
        "livemode": False,
    }


class AccountRetrieveApi(APIView):
    """`GET /v1/account`: the account of the key that signs the request."""

    @extend_schema(
        operation_id="GetAccount",
        summary="Retrieve the account of the API key",
        responses={200: OpenApiTypes.OBJECT},
        tags=["Account"],
    )
    def get(self, request: Request) -> Response:
        client: ApiClient = request.user  # type: ignore[assignment]
        return Response(present_account(client.merchant))


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how `ApiKeyAuthentication` is used."""

    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "secretKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "Your secret key `sk_test_…` as the username, with an empty "
            "password; `Authorization: Bearer sk_test_…` works too.",
        }
