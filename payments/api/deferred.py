"""Simulated latency that costs memory, not workers (issue 4).

A confirmation whose processor takes time runs in two short transactions
with an `await` between them: the DRF view (phase 1, in a thread) commits
the payment as `processing` with its recorded outcome and answers a
"pending" marker; this wrapper then sleeps on the event loop — holding no
thread, no database connection and no transaction — and runs phase 2
(`payments.services.confirmations.confirmation_complete`), which applies
the outcome and saves the idempotent response. The client still gets the
final status in the one HTTP response, as with Stripe.

Under ASGI (daphne, the Procfile's server) thousands of confirmations can
wait at once. Under WSGI (`config.wsgi` sets PAYLAB_WSGI) there is no event
loop to wait on, so the worker sleeps: correct, but it costs a worker.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, HttpResponse

from payments.api.base import json_response
from payments.services import confirmations
from payments.services.idempotency import idempotency_replay

View = Callable[..., Any]


@dataclass(frozen=True)
class Pending:
    intent_id: str
    merchant_id: int
    delay_ms: int
    idempotency_key: str
    fallback: bytes  # the payment as presented in phase 1, should phase 2 find it done


def _release_connection() -> None:
    """Give the connection back (to the pool) before waiting: a connection
    held through the wait would cap concurrency at the pool size. Not inside
    an atomic block (tests wrap each test in one)."""
    if not connection.in_atomic_block:
        connection.close()


def _phase_one(view: View, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    try:
        response: HttpResponse = view(request, *args, **kwargs)
        if hasattr(response, "render"):
            response.render()
        return response
    finally:
        _release_connection()


def _phase_two(pending: Pending) -> HttpResponse:
    try:
        done = confirmations.confirmation_complete(intent_id=pending.intent_id)
        if done is not None:
            return json_response(*done)
        # The sweep applied it first (this request waited too long).
        if pending.idempotency_key:
            saved = idempotency_replay(merchant_id=pending.merchant_id, key=pending.idempotency_key)
            if saved is not None:
                return json_response(saved.status, saved.body, replayed=True)
        return json_response(200, pending.fallback)
    finally:
        _release_connection()


def deferred(view: View) -> View:
    """Wrap a DRF view whose operation may answer later (`StripeApi.pending`)."""

    if os.environ.get("PAYLAB_WSGI"):

        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response: HttpResponse = view(request, *args, **kwargs)
            pending: Pending | None = getattr(response, "paylab_pending", None)
            if pending is not None:
                time.sleep(pending.delay_ms / 1000)
                response = _phase_two(pending)
            delay = getattr(response, "paylab_delay_ms", 0)
            if delay:
                time.sleep(delay / 1000)
            return response

        wrapped: View = sync_view
    else:

        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = await sync_to_async(_phase_one)(view, request, *args, **kwargs)
            pending: Pending | None = getattr(response, "paylab_pending", None)
            if pending is not None:
                await asyncio.sleep(pending.delay_ms / 1000)
                response = await sync_to_async(_phase_two)(pending)
            delay = getattr(response, "paylab_delay_ms", 0)
            if delay:
                await asyncio.sleep(delay / 1000)
            return response

        wrapped = async_view
    # What Django's and DRF's as_view() carry (URL introspection,
    # drf-spectacular, CSRF).
    for name in ("cls", "initkwargs", "view_class", "view_initkwargs"):
        setattr(wrapped, name, getattr(view, name))
    wrapped.csrf_exempt = True  # type: ignore[attr-defined]
    return wrapped
