"""What every merchant API view shares: the request context, rendering in
Stripe's shape, idempotent POSTs and Stripe's list objects.

Views subclass `StripeApi` and implement `perform(request, params)` — parse,
call one service or selector, present — returning (status, body dict).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.authentication import ApiClient
from config.api import query_params
from config.errors import InvalidRequestError
from payments import context
from payments.api.throttling import ApiKeyRateThrottle
from payments.services import batch
from payments.services.idempotency import run_idempotent

Body = dict[str, Any]


def render(status: int, body: Body) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def request_body(request: Request) -> dict[str, Any]:
    """The parameters of a POST or DELETE: a JSON object or form fields.
    Any other JSON value (an array, a string, a number) is a 400, not a 500."""
    data = request.data
    if not data:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidRequestError(
            "Invalid request body: expected an object of parameters (JSON object or form fields)."
        )
    return dict(data)


def json_response(status: int, payload: bytes, *, replayed: bool = False) -> HttpResponse:
    response = HttpResponse(payload, status=status, content_type="application/json")
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


class StripeApi(APIView):
    """Base of every /v1/ route.

    Stripe puts several operations on one URL (list and create on
    `/v1/payment_intents`; retrieve, update and delete on `…/{id}`), so a
    class serves one route, with one `perform_<method>` and one input
    serializer per operation — the body of each still reads: parse, call,
    present. GETs read the query string; POSTs and DELETEs the body and go
    through `Idempotency-Key` handling.
    """

    throttle_classes = [ApiKeyRateThrottle]
    serializers: dict[str, type] = {}
    # Set by an operation whose answer comes later (a confirmation waiting on
    # its simulated processor; payments.api.deferred completes it).
    pending: Any = None
    # Simulated latency to add to an answer already committed (capture).
    delay_ms: int = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.http_method_names = [
            m for m in ("get", "post", "delete") if hasattr(cls, f"perform_{m}")
        ]

    def client(self, request: Request) -> ApiClient:
        assert isinstance(request.user, ApiClient)
        return request.user

    def merchant_id(self, request: Request) -> int:
        return self.client(request).merchant_id

    def params(self, request: Request) -> dict[str, Any]:
        raw = query_params(request) if request.method == "GET" else request_body(request)
        serializer_class = self.serializers.get(request.method or "GET")
        if serializer_class is None:
            return raw
        serializer = serializer_class(data=raw)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _perform(self, request: Request, **kwargs: Any) -> tuple[int, Body]:
        params = self.params(request)
        handler = getattr(self, f"perform_{(request.method or 'get').lower()}")
        status, body = handler(request, params, **kwargs)
        return status, body

    def get(self, request: Request, **kwargs: Any) -> HttpResponse:
        request_id = getattr(request._request, "request_id", "")
        with context.request_context(request_id=request_id):
            status, body = self._perform(request, **kwargs)
        return json_response(status, render(status, body))

    def post(self, request: Request, **kwargs: Any) -> HttpResponse:
        return self._write(request, **kwargs)

    def delete(self, request: Request, **kwargs: Any) -> HttpResponse:
        return self._write(request, **kwargs)

    def _write(self, request: Request, **kwargs: Any) -> HttpResponse:
        request_id = getattr(request._request, "request_id", "")
        key = request.headers.get("Idempotency-Key")

        def execute() -> tuple[int, bytes] | None:
            with context.request_context(
                request_id=request_id, idempotency_key=(key or "").strip()
            ):
                status, body = self._perform(request, **kwargs)
            if self.pending is not None:
                return None
            return status, render(status, body)

        if key is None:
            # One transaction; its writes (and the services' savepoints)
            # leave in one round trip at the end (payments.services.batch).
            with batch.transaction():
                result = execute()
            if result is None:
                return self._pending_response()
            return self._delayed(json_response(*result))
        saved = run_idempotent(
            merchant_id=self.merchant_id(request),
            key=key.strip(),
            method=request.method or "POST",
            path=request.path,
            params=request_body(request),
            request_id=request_id,
            execute=execute,
        )
        if saved.pending:
            return self._pending_response()
        return self._delayed(json_response(saved.status, saved.body, replayed=saved.replayed))

    def _delayed(self, response: HttpResponse) -> HttpResponse:
        if self.delay_ms:
            response.paylab_delay_ms = self.delay_ms  # type: ignore[attr-defined]
        return response

    def _pending_response(self) -> HttpResponse:
        response = HttpResponse(status=202)
        response.paylab_pending = self.pending  # type: ignore[attr-defined]
        return response


def _timestamp(value: Any, param: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError):
        raise InvalidRequestError(
            "Invalid timestamp: must be an integer Unix timestamp.", param=param
        ) from None


def filter_created(query: QuerySet[Any], created: Any) -> QuerySet[Any]:
    """`created=ts` or `created[gte|gt|lte|lt]=ts`."""
    if created in (None, ""):
        return query
    if not isinstance(created, dict):
        return query.filter(created=_timestamp(created, "created"))
    for op in created:
        if op not in ("gte", "gt", "lte", "lt"):
            raise InvalidRequestError(
                f"Received unknown parameter: created[{op}]",
                code="parameter_unknown",
                param=f"created[{op}]",
            )
        query = query.filter(**{f"created__{op}": _timestamp(created[op], f"created[{op}]")})
    return query


def list_object(
    request: Request,
    query: QuerySet[Any],
    params: dict[str, Any],
    present: Callable[[Any, list[str]], Body],
) -> Body:
    """Stripe's list object over a query whose ids sort by creation time.

    Keyset pagination on the primary key: newest first; `starting_after`
    continues after an id, `ending_before` pages back. `has_more` comes from
    fetching one row more than asked.
    """
    limit = params.get("limit") or 10
    query = filter_created(query, params.get("created"))
    expand = [e.removeprefix("data.") for e in params.get("expand") or [] if e.startswith("data.")]
    if params.get("ending_before"):
        rows = list(query.filter(pk__gt=params["ending_before"]).order_by("pk")[: limit + 1])
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    else:
        if params.get("starting_after"):
            query = query.filter(pk__lt=params["starting_after"])
        rows = list(query.order_by("-pk")[: limit + 1])
        has_more = len(rows) > limit
        rows = rows[:limit]
    return {
        "object": "list",
        "data": [present(row, expand) for row in rows],
        "has_more": has_more,
        "url": request.path,
    }
