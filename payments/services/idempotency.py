"""Stripe's `Idempotency-Key` semantics (DESIGN rule 6).

`run_idempotent` wraps one API call in one database transaction together
with its idempotency record:

- the first request with a key inserts the record (INSERT … ON CONFLICT DO
  NOTHING), runs, and saves its response — status and exact body bytes —
  in the same transaction as its writes, so a crash cannot leave a
  response without its effects or effects without their response;
- a concurrent duplicate blocks on the unique index until the first commits,
  then replays the saved response: exactly one execution;
- a later duplicate replays it for 24 hours; with different parameters or on
  another endpoint it is an `idempotency_error`;
- a request that fails validation raises, the transaction rolls back, and
  nothing — not even the key — is saved (Stripe does the same);
- a confirmation that waits on its simulated processor commits its first
  phase with the record still in flight (`execute` returns None); the
  transaction that applies the outcome saves the response
  (`idempotency_complete`), so a duplicate meanwhile gets 409 and never a
  second payment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.errors import Conflict, IdempotencyError, InvalidRequestError
from payments.models import IdempotencyKey
from payments.services import batch

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class SavedResponse:
    status: int
    body: bytes
    replayed: bool
    pending: bool = False


def request_fingerprint(method: str, path: str, params: Any) -> str:
    """Keyed, like the card fingerprint (DESIGN rule 5): the parameters may
    hold a card number and CVC, and a plain hash of them could be reversed
    by trying the few numbers that fit a known BIN and last4."""
    canonical = json.dumps(
        [method, path, params], sort_keys=True, separators=(",", ":"), default=str
    )
    key = settings.CARD_FINGERPRINT_KEY.encode()
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _claim(
    merchant_id: int, key: str, method: str, path: str, digest: str, request_id: str, now: datetime
) -> bool:
    """Insert the record; False when a record for this key exists already."""
    table = IdempotencyKey._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (merchant_id, key, method, path, request_hash, status, request_id, created) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (merchant_id, key) DO NOTHING RETURNING id",
            [
                merchant_id,
                key,
                method,
                path,
                digest,
                IdempotencyKey.Status.IN_FLIGHT,
                request_id,
                now,
            ],
        )
        return cursor.fetchone() is not None


def run_idempotent(
    *,
    merchant_id: int,
    key: str,
    method: str,
    path: str,
    params: Any,
    request_id: str,
    execute: Callable[[], tuple[int, bytes] | None],
    now: datetime | None = None,
) -> SavedResponse:
    """Run `execute` at most once per (merchant, key); replay otherwise."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequestError(
            f"Idempotency keys must be 1 to {MAX_KEY_LENGTH} characters long.",
            param="Idempotency-Key",
        )
    now = now or timezone.now()
    digest = request_fingerprint(method, path, params)
    with batch.transaction():
        claimed = _claim(merchant_id, key, method, path, digest, request_id, now)
        if not claimed:
            record = IdempotencyKey.objects.filter(merchant_id=merchant_id, key=key).first()
            if record is not None and record.created <= now - KEY_LIFETIME:
                # Expired: forget it and start afresh, still in this transaction.
                record.delete()
                claimed = _claim(merchant_id, key, method, path, digest, request_id, now)
            if not claimed:
                return _replay(record, method=method, path=path, digest=digest, key=key)
        result = execute()
        if result is None:
            return SavedResponse(status=0, body=b"", replayed=False, pending=True)
        status, body = result
        idempotency_complete(merchant_id=merchant_id, key=key, status=status, body=body, now=now)
        return SavedResponse(status=status, body=body, replayed=False)


def idempotency_complete(
    *, merchant_id: int, key: str, status: int, body: bytes, now: datetime | None = None
) -> None:
    """Save the response of a request (the caller's transaction; queued
    with its other writes inside `batch.batched()`)."""
    table = IdempotencyKey._meta.db_table
    batch.execute(
        f"UPDATE {table} SET status = %s, response_status = %s, response_body = %s, "  # noqa: S608
        "completed_at = %s WHERE merchant_id = %s AND key = %s",
        [
            IdempotencyKey.Status.COMPLETED.value,
            status,
            body,
            now or timezone.now(),
            merchant_id,
            key,
        ],
    )


def idempotency_replay(*, merchant_id: int, key: str) -> SavedResponse | None:
    record = IdempotencyKey.objects.filter(merchant_id=merchant_id, key=key).first()
    if record is None or record.response_status is None:
        return None
    return SavedResponse(
        status=record.response_status, body=bytes(record.response_body or b""), replayed=True
    )


def _replay(
    record: IdempotencyKey | None, *, method: str, path: str, digest: str, key: str
) -> SavedResponse:
    if record is None:
        # Deleted between our insert attempt and our read: the other request
        # is mid-flight with an expired twin. Tell the client to retry.
        raise Conflict(
            "There is currently another in-progress request using this Idempotent Key. Retry later.",
            code="idempotency_key_in_use",
        )
    if record.method != method or record.path != path:
        raise IdempotencyError(
            f"Keys for idempotent requests can only be used for the same endpoint they were first used for "
            f"('{record.method} {record.path}' vs '{method} {path}'). Try using a key other than '{key}'.",
            code="idempotency_key_in_use",
        )
    if record.request_hash != digest:
        raise IdempotencyError(
            "Keys for idempotent requests can only be used with the same parameters they were first used with. "
            f"Try using a key other than '{key}' if you meant to execute a different request.",
            code="idempotency_key_in_use",
        )
    if record.status != IdempotencyKey.Status.COMPLETED or record.response_status is None:
        raise Conflict(
            "There is currently another in-progress request using this Idempotent Key (that probably means "
            "you submitted twice, and the other request is still going through). Please try again later.",
            code="idempotency_key_in_use",
        )
    return SavedResponse(
        status=record.response_status, body=bytes(record.response_body or b""), replayed=True
    )


def idempotency_keys_purge(*, now: datetime | None = None) -> int:
    """Forget records older than 24 hours."""
    now = now or timezone.now()
    deleted, _ = IdempotencyKey.objects.filter(created__lte=now - KEY_LIFETIME).delete()
    return deleted
