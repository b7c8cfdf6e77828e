"""Celery tasks of the payments domain: interfaces only (STYLE 12).

Each takes primitive arguments, calls one service and is idempotent, so a
redelivery after a worker crash (acks_late) changes nothing twice.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from payments.services import confirmations, idempotency, intents, outbox, refunds, webhooks


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def settle_refund(refund_id: str) -> None:
    refunds.refund_settle(refund_id=refund_id)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def sweep_pending_refunds() -> int:
    return refunds.refunds_settle_due()


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def expire_authorizations() -> int:
    return intents.payment_intents_expire_authorizations()


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def expire_three_ds_challenges() -> int:
    return intents.three_ds_challenges_expire()


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def purge_idempotency_keys() -> int:
    return idempotency.idempotency_keys_purge()


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def sweep_outbox() -> int:
    """The relay's safety net. Rows younger than the grace period are left to
    the nudged relay (in embedded mode this worker's channel layer reaches no
    page; see payments.services.outbox)."""
    return outbox.outbox_publish(
        relay=outbox.relay_name("sweep"), older_than=settings.PAYLAB_OUTBOX_SWEEP_GRACE_SECONDS
    ).count


# Retries further away than this are left to the sweep rather than held as
# ETA messages by a worker.
WEBHOOK_ETA_MAX_SECONDS = 300


@shared_task(
    bind=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5, acks_late=True
)
def deliver_webhook(self: Task, delivery_id: int) -> str:
    outcome = webhooks.webhook_deliver(delivery_id=delivery_id)
    if outcome.retry_in is not None and outcome.retry_in <= WEBHOOK_ETA_MAX_SECONDS:
        deliver_webhook.apply_async((delivery_id,), countdown=max(outcome.retry_in, 0.0))
    return outcome.status


# The delivery sweep re-queues only deliveries overdue by this much: the
# safety net for a task lost with a killed worker (its unacknowledged message
# would otherwise come back only after the broker's visibility timeout).
WEBHOOK_SWEEP_GRACE_SECONDS = 10.0


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def sweep_webhook_deliveries() -> int:
    due = webhooks.webhook_deliveries_due(older_than=WEBHOOK_SWEEP_GRACE_SECONDS)
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def settle_pending_authorization(intent_id: str) -> bool:
    """A UPI payment's settlement when it falls due (queued with a countdown)."""
    return confirmations.confirmation_complete(intent_id=intent_id) is not None


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def settle_pending_authorizations() -> int:
    """The safety net: due UPI settlements, and card confirmations whose web
    request died while waiting on its simulated processor."""
    return confirmations.pending_authorizations_settle()
