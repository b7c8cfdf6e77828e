"""The request log: one JSON line per request, and a `Request-Id` header.

Only the method, the path (never the query string, which may carry a key),
the status, the duration and the merchant are logged.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("paylab.request")


def new_request_id() -> str:
    return "req_" + secrets.token_urlsafe(12)


def _merchant_id(request: HttpRequest) -> int | None:
    auth = getattr(request, "auth", None)
    if auth is not None and getattr(auth, "merchant_id", None):
        return auth.merchant_id
    user = getattr(request, "user", None)
    return getattr(user, "merchant_id", None) if user is not None else None


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        response["Request-Id"] = request_id
        logger.info(
            "request",
            extra={
                "paylab": {
                    "request_id": request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                    "merchant_id": _merchant_id(request),
                }
            },
        )
        return response
