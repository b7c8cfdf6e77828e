"""Confirmations that wait on a simulated processor: the second phase.

The first phase (`payment_intent_confirm(defer=True)`) commits the payment
as `processing` with its recorded outcome; the API awaits the simulated
latency outside any transaction, then `confirmation_complete` applies the
outcome and saves the idempotent response in one short transaction. If the
web process dies during the wait, the sweep task completes it the same way
(`pending_authorizations_settle`), so a crash delays the outcome, never
loses it, and the Idempotency-Key replays what the request would have said.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils import timezone

from payments import presenters
from payments.models import PendingAuthorization
from payments.services import batch, idempotency, intents
from payments.services.intents import Outcome

Body = dict[str, Any]


def outcome_body(outcome: Outcome, expand: list[str] | None) -> tuple[int, Body]:
    """200 with the payment, or Stripe's 402 card error carrying the payment."""
    presented = presenters.payment_intent(outcome.intent, expand)
    if outcome.error is None:
        return 200, presented
    error = outcome.error.as_dict()
    error["payment_intent"] = presented
    last_error = outcome.intent.last_payment_error or {}
    error["payment_method"] = last_error.get("payment_method")
    return outcome.error.status, {"error": error}


def render(body: Body) -> bytes:
    """The same bytes as the API's renderer (payments.api.base.render)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@batch.atomic
def confirmation_complete(
    *, intent_id: str, now: datetime | None = None
) -> tuple[int, bytes] | None:
    """Apply a waiting confirmation's outcome and save its idempotent
    response; (status, body), or None when it was applied already."""
    now = now or timezone.now()
    pending = PendingAuthorization.objects.filter(pk=intent_id).first()
    if pending is None:
        return None
    key, expand, merchant_id = pending.idempotency_key, pending.expand, pending.merchant_id
    outcome = intents.payment_intent_confirm_complete(intent_id=intent_id, now=now)
    if outcome is None:
        return None
    status, body = outcome_body(outcome, expand or None)
    payload = render(body)
    if key:
        idempotency.idempotency_complete(
            merchant_id=merchant_id, key=key, status=status, body=payload, now=now
        )
    return status, payload


def pending_authorizations_settle(
    *, now: datetime | None = None, grace_seconds: float = 30.0
) -> int:
    """Settle due UPI payments and finish card confirmations whose request
    died mid-wait (older than `grace_seconds`). Each in its own transaction."""
    done = 0
    for intent_id in intents.pending_authorizations_due(now=now, grace_seconds=grace_seconds):
        if confirmation_complete(intent_id=intent_id, now=now) is not None:
            done += 1
    return done
