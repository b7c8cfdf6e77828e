"""DRF authentication by secret API key.

The key arrives as the HTTP Basic username (how the official `stripe`
libraries send it, with an empty password) or as `Authorization: Bearer`.
Anything missing, malformed, unknown, expired or revoked is a 401 in
Stripe's JSON shape, rendered by `config.api.exception_handler`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import ApiKey, Merchant
from accounts.services import api_key_authenticate
from config.errors import AuthenticationError


class ApiClient:
    """What `request.user` is on the API: the merchant behind a key."""

    is_authenticated = True
    is_anonymous = False
    is_active = True

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.merchant: Merchant = api_key.merchant
        self.merchant_id: int = api_key.merchant_id

    def __str__(self) -> str:
        return f"api-key:{self.api_key.pk}"


def _secret_from_header(header: str) -> str:
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        return credentials
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationError("Invalid HTTP Basic credentials.") from None
        return decoded.partition(":")[0]
    raise AuthenticationError(
        "Invalid Authorization header. Send your secret key as the HTTP Basic username "
        "or as 'Authorization: Bearer sk_test_…'."
    )


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey] | None:
        header = get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        secret = _secret_from_header(header)
        if not secret:
            raise AuthenticationError(
                "You did not provide an API key. Send it as the HTTP Basic username "
                "or as 'Authorization: Bearer sk_test_…'."
            )
        api_key = api_key_authenticate(secret)
        return ApiClient(api_key), api_key

    def authenticate_header(self, request: Any) -> str:
        return 'Basic realm="PayLab"'
