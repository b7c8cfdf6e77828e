"""The one error vocabulary of PayLab, in Stripe's terms.

Domain code raises these (never HTTP exceptions); the API's exception handler
renders them as Stripe's envelope `{"error": {type, code, message, param,
decline_code}}` with the status carried here, and HTML views show the same
message inline. Every app may import this module; it imports nothing of ours.
"""

from __future__ import annotations

from typing import Any


class PayLabError(Exception):
    """Base class: a Stripe error `type`, an HTTP status and the error fields."""

    type: str = "api_error"
    status: int = 500
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.decline_code = decline_code
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            body["code"] = self.code
        if self.param:
            body["param"] = self.param
        if self.decline_code:
            body["decline_code"] = self.decline_code
        body.update(self.extra)
        return body


class InvalidRequestError(PayLabError):
    type = "invalid_request_error"
    status = 400


class AuthenticationError(InvalidRequestError):
    """A missing, malformed, unknown, expired or revoked API key (Stripe: 401)."""

    status = 401


class PermissionError_(InvalidRequestError):
    status = 403


class ResourceMissing(InvalidRequestError):
    """Also raised for another merchant's object: tenancy answers 404, not 403."""

    status = 404
    default_code = "resource_missing"


class RateLimited(InvalidRequestError):
    status = 429
    default_code = "rate_limit"


class Conflict(InvalidRequestError):
    status = 409


class IdempotencyError(PayLabError):
    type = "idempotency_error"
    status = 400
    default_code = "idempotency_key_in_use"


class CardError(PayLabError):
    """The issuer (or the simulated processor) declined: Stripe answers 402."""

    type = "card_error"
    status = 402


class ServiceUnavailable(PayLabError):
    type = "api_error"
    status = 503
