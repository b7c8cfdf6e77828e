"""The request an event was caused by (Stripe's `event.request`).

The API sets it for the duration of a request; services read it when they
append events. Outside a request (tasks, commands) it is empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    idempotency_key: str = ""


_EMPTY = RequestContext()
_current: ContextVar[RequestContext] = ContextVar("paylab_request", default=_EMPTY)


def current() -> RequestContext:
    return _current.get()


@contextmanager
def request_context(request_id: str = "", idempotency_key: str = "") -> Iterator[None]:
    token = _current.set(RequestContext(request_id=request_id, idempotency_key=idempotency_key))
    try:
        yield
    finally:
        _current.reset(token)
