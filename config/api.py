"""What every PayLab API endpoint shares: Stripe's request encoding and its
error envelope.

- `StripeFormParser` reads form bodies with bracketed nesting
  (`metadata[order]=42`, `expand[]=customer`, `items[0][price]=…`) into the
  nested dicts and lists a JSON body would give.
- `exception_handler` renders every error — ours, DRF's, Django's 404 and any
  unexpected exception — as `{"error": {...}}` with Stripe's status codes.
  A merchant never sees a stack trace or an HTML page from `/v1/`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse, QueryDict
from rest_framework import exceptions as drf
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from config.errors import (
    AuthenticationError,
    InvalidRequestError,
    PayLabError,
    PermissionError_,
    RateLimited,
    ResourceMissing,
    ServiceUnavailable,
)

logger = logging.getLogger("paylab.api")

_KEY_PART = re.compile(r"\[([^\[\]]*)\]")


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts.extend(_KEY_PART.findall("[" + rest))
    return parts


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are 0..n-1 (Stripe's `items[0][…]`) into lists."""
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            indices = sorted(int(k) for k in converted)
            if indices == list(range(len(indices))):
                return [converted[str(i)] for i in indices]
        return converted
    if isinstance(node, list):
        return [_listify(v) for v in node]
    return node


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`[("a[b]", "1"), ("c[]", "x"), ("c[]", "y")]` → `{"a": {"b": "1"}, "c": ["x", "y"]}`."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split_key(key)
        node: Any = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            next_is_append = not last and parts[index + 1] == ""
            if part == "":
                # `key[]=v`: append to the list the previous part created.
                if last:
                    node.append(value)
                    break
                node.append({})
                node = node[-1]
                continue
            if last:
                node[part] = value
            else:
                default: Any = [] if next_is_append else {}
                child = node.get(part) if isinstance(node, dict) else None
                if child is None or (next_is_append and not isinstance(child, list)):
                    child = default
                    node[part] = child
                node = child
    return _listify(result)


def query_params(request: HttpRequest | Any) -> dict[str, Any]:
    """Nested parameters of a query string (GET lists: `created[gte]`, `expand[]`)."""
    query: QueryDict = getattr(request, "query_params", None) or request.GET
    return unflatten((k, v) for k in query for v in query.getlist(k))


class StripeFormParser(BaseParser):
    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", "utf-8")
        raw = stream.read().decode(encoding) if stream is not None else ""
        query = QueryDict(raw, encoding=encoding)
        return unflatten((k, v) for k in query for v in query.getlist(k))


def _flatten_detail(detail: Any, prefix: str = "") -> tuple[str, str]:
    """First (param, message) of a DRF validation detail, param in bracket form."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            param = f"{prefix}[{name}]" if prefix and name else (prefix or name)
            return _flatten_detail(value, param)
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, dict | list):
            return _flatten_detail(first, f"{prefix}[0]" if prefix else prefix)
        return prefix, str(first)
    return prefix, str(detail)


def to_paylab_error(exc: Exception) -> PayLabError | None:
    """Map DRF's and Django's exceptions onto the PayLab vocabulary."""
    if isinstance(exc, PayLabError):
        return exc
    if isinstance(exc, drf.ValidationError):
        param, message = _flatten_detail(exc.detail)
        code = "parameter_invalid"
        codes = exc.get_codes()
        flat = codes
        while isinstance(flat, dict | list) and flat:
            flat = next(iter(flat.values())) if isinstance(flat, dict) else flat[0]
        if flat == "required":
            code = "parameter_missing"
            message = f"Missing required param: {param}."
        elif flat == "parameter_unknown":
            code = "parameter_unknown"
        elif param and not message.startswith(("Invalid", "Received")):
            message = f"Invalid {param}: {message[:1].lower()}{message[1:]}"
        return InvalidRequestError(message, code=code, param=param or None)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return AuthenticationError(str(exc.detail))
    if isinstance(exc, drf.PermissionDenied | PermissionDenied):
        return PermissionError_(str(getattr(exc, "detail", None) or "Permission denied."))
    if isinstance(exc, Http404 | drf.NotFound):
        return ResourceMissing("No such resource.")
    if isinstance(exc, drf.Throttled):
        wait = int(getattr(exc, "wait", None) or 1)
        return RateLimited(
            "Too many requests hit the API too quickly.",
            headers={"Retry-After": str(max(wait, 1))},
        )
    if isinstance(exc, drf.MethodNotAllowed):
        return InvalidRequestError(str(exc.detail), status=405)
    if isinstance(exc, drf.UnsupportedMediaType):
        return InvalidRequestError(str(exc.detail), status=415)
    if isinstance(exc, drf.ParseError):
        return InvalidRequestError(f"Invalid request body: {exc.detail}")
    if isinstance(exc, drf.APIException):
        return PayLabError(str(exc.detail), status=exc.status_code)
    if _redis_unavailable(exc):
        # Redis (rate limiter, cache) is down: a clean, retryable 503.
        # Raised before the view's transaction opens, so nothing is written.
        return ServiceUnavailable(
            "PayLab is temporarily unavailable; retry shortly.", headers={"Retry-After": "1"}
        )
    return None


def _redis_unavailable(exc: Exception) -> bool:
    try:
        from redis.exceptions import ConnectionError, TimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, ConnectionError | TimeoutError)


def error_response(error: PayLabError) -> Response:
    response = Response({"error": error.as_dict()}, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    if error.status == 401:
        response["WWW-Authenticate"] = 'Basic realm="PayLab"'
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    error = to_paylab_error(exc)
    if error is None:
        logger.exception("unhandled error in API view", exc_info=exc)
        error = PayLabError("An unexpected error occurred on PayLab's side.")
    return error_response(error)


def unknown_url(request: HttpRequest, path: str = "") -> JsonResponse:
    """Stripe's answer for a `/v1/` URL that names no resource."""
    error = ResourceMissing(
        f"Unrecognized request URL ({request.method}: {request.path}).", code=None
    )
    error.code = None
    return JsonResponse({"error": error.as_dict()}, status=404)


class AlwaysJson(DefaultContentNegotiation):
    """Stripe answers JSON whatever the `Accept` header says; so does PayLab
    (a browser's `Accept: text/html` must not turn a 401 into a 406)."""

    def select_renderer(
        self, request: Any, renderers: Iterable[Any], format_suffix: str | None = None
    ) -> Any:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type
