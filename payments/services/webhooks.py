"""Webhook endpoints and delivery: signed, retried, recorded (DESIGN rule 7).

Endpoints are Stripe's `we_…` objects. The relay (payments.services.outbox)
creates one WebhookDelivery per (endpoint, event) it owes; `webhook_deliver`
makes one HTTP attempt of one delivery:

- the body is the event's Stripe JSON — a redelivery carries the same event
  id, so receivers dedupe on it (delivery is at least once);
- `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` with the
  endpoint's secret, which `stripe.Webhook.construct_event` verifies;
- connect and read timeouts from settings, redirects not followed (a 3xx is
  a failure, as at Stripe);
- 2xx delivers; anything else, a timeout or a refused URL schedules the next
  attempt after RETRY_SCHEDULE[n] * PAYLAB_WEBHOOK_RETRY_SCALE seconds; after
  the last one the delivery fails;
- every attempt is a WebhookAttempt row (headers sent, status, ≤ 2 KB of the
  response, duration, error);
- an endpoint that has answered nothing but failures for
  PAYLAB_WEBHOOK_DISABLE_AFTER_HOURS is disabled, with the reason recorded,
  and its pending deliveries fail; re-enabling it and `webhook_resend` bring
  them back.

A delivery is held by a lease (`locked_until`) while its request is in
flight, taken by a conditional UPDATE: two workers handed the same task
(a redelivered Celery message after a crash) make one attempt, and a crashed
worker's lease runs out for the sweep to retry.

In the production profile an endpoint URL may not resolve to a loopback,
private, link-local, reserved or multicast address, checked on create and
update and again before each attempt (DNS can change). The development
profile allows anything, localhost included. (The check resolves the name and
httpx resolves it again to connect, so a DNS server answering differently
within that millisecond is not defended against.)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Merchant
from config.errors import InvalidRequestError
from payments import ids, presenters
from payments.errors import missing
from payments.models import (
    Event,
    OutboxMessage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from payments.services.metadata import merge_metadata
from payments.services.verify import Report, register

log = logging.getLogger(__name__)

# Seconds to wait after failed attempt n (1-based) before attempt n + 1:
# eleven attempts over 71.6 hours, roughly Stripe's "up to three days with
# exponential backoff". Multiplied by PAYLAB_WEBHOOK_RETRY_SCALE.
RETRY_SCHEDULE: tuple[int, ...] = (
    60,
    5 * 60,
    30 * 60,
    60 * 60,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    12 * 3600,
    24 * 3600,
    20 * 3600,
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
RESPONSE_EXCERPT_BYTES = 2048
USER_AGENT = "PayLab/1.0 (+https://stripe.com/docs/webhooks)"
_EVENT_TYPE = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


# --- URLs ------------------------------------------------------------------------


def _forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def url_problem(url: str, *, profile: str | None = None) -> str | None:
    """Why this URL may not receive webhooks, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL with a host"
    if (profile or settings.PAYLAB_PROFILE) != "production":
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        return f"its host does not resolve ({error})"
    for info in infos:
        if _forbidden_address(str(info[4][0])):
            return "its host resolves to a loopback, private or link-local address"
    return None


def _check_url(url: str) -> str:
    problem = url_problem(url)
    if problem:
        raise InvalidRequestError(f"Invalid URL: {problem}.", param="url")
    return url


def _check_events(enabled_events: list[str]) -> list[str]:
    if not enabled_events:
        raise InvalidRequestError(
            "enabled_events must list at least one event type, or '*'.", param="enabled_events"
        )
    for event_type in enabled_events:
        if event_type != "*" and not _EVENT_TYPE.match(event_type):
            raise InvalidRequestError(
                f"Invalid event type: {event_type!r}.", param="enabled_events"
            )
    return sorted(set(enabled_events))


# --- Endpoints ---------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def get_endpoint(*, merchant_id: int, endpoint_id: str, lock: bool = False) -> WebhookEndpoint:
    query = WebhookEndpoint.objects.filter(
        pk=endpoint_id, merchant_id=merchant_id, deleted_at__isnull=True
    )
    if lock:
        query = query.select_for_update()
    endpoint = query.first()
    if endpoint is None:
        raise missing("webhook_endpoint", endpoint_id)
    return endpoint


@transaction.atomic
def webhook_endpoint_create(
    *,
    merchant: Merchant,
    url: str,
    enabled_events: list[str],
    description: str = "",
    metadata: dict[str, str] | None = None,
    now: datetime | None = None,
) -> WebhookEndpoint:
    """Create an enabled endpoint with a fresh `whsec_` secret; it is owed
    every event published from now on."""
    now = now or timezone.now()
    endpoint = WebhookEndpoint(
        id=ids.new_id("we", now),
        merchant=merchant,
        url=_check_url(url),
        enabled_events=_check_events(enabled_events),
        description=description or "",
        metadata=merge_metadata({}, metadata),
        secret=new_secret(),
        created=now,
        enabled_at=now,
    )
    endpoint.save(force_insert=True)
    return endpoint


@transaction.atomic
def webhook_endpoint_update(
    *,
    merchant: Merchant,
    endpoint_id: str,
    url: str | None = None,
    enabled_events: list[str] | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    disabled: bool | None = None,
    now: datetime | None = None,
) -> WebhookEndpoint:
    """Change the given fields. `disabled=False` re-enables a disabled endpoint
    (clearing its failure flag): it is owed events published from then on."""
    now = now or timezone.now()
    endpoint = get_endpoint(merchant_id=merchant.pk, endpoint_id=endpoint_id, lock=True)
    if url is not None:
        endpoint.url = _check_url(url)
    if enabled_events is not None:
        endpoint.enabled_events = _check_events(enabled_events)
    if description is not None:
        endpoint.description = description
    endpoint.metadata = merge_metadata(endpoint.metadata, metadata)
    if disabled is True and endpoint.status == WebhookEndpoint.Status.ENABLED:
        endpoint.status = WebhookEndpoint.Status.DISABLED
        endpoint.disabled_reason = "disabled by the merchant"
    elif disabled is False and endpoint.status == WebhookEndpoint.Status.DISABLED:
        endpoint.status = WebhookEndpoint.Status.ENABLED
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
        endpoint.enabled_at = now
    endpoint.save()
    return endpoint


@transaction.atomic
def webhook_endpoint_roll_secret(
    *, merchant: Merchant, endpoint_id: str, now: datetime | None = None
) -> WebhookEndpoint:
    """Replace the signing secret; attempts from now on are signed with the new one."""
    endpoint = get_endpoint(merchant_id=merchant.pk, endpoint_id=endpoint_id, lock=True)
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret"])
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(
    *, merchant: Merchant, endpoint_id: str, now: datetime | None = None
) -> WebhookEndpoint:
    """Delete (softly: the delivery history stays); its pending deliveries fail."""
    now = now or timezone.now()
    endpoint = get_endpoint(merchant_id=merchant.pk, endpoint_id=endpoint_id, lock=True)
    endpoint.deleted_at = now
    endpoint.status = WebhookEndpoint.Status.DISABLED
    endpoint.save(update_fields=["deleted_at", "status"])
    endpoint.deliveries.filter(status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED, last_error="endpoint deleted", locked_until=None
    )
    return endpoint


# --- Signing -----------------------------------------------------------------------


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """Stripe's scheme: v1 = HMAC-SHA256(secret, f"{t}.{payload}")."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# --- Delivery ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one call of `webhook_deliver` did. `retry_in` is set when another
    attempt is scheduled (seconds from now)."""

    status: str  # "succeeded", "retrying", "failed", "skipped"
    attempt: int = 0
    retry_in: float | None = None


def retry_delay(attempts: int) -> float:
    """Seconds before the attempt after failed attempt number `attempts`."""
    return RETRY_SCHEDULE[attempts - 1] * settings.PAYLAB_WEBHOOK_RETRY_SCALE


def _lease_seconds() -> float:
    # Longer than one attempt can take (we read at most 2 KB of the answer).
    return settings.PAYLAB_WEBHOOK_CONNECT_TIMEOUT + 2 * settings.PAYLAB_WEBHOOK_READ_TIMEOUT + 10


def _claim(delivery_id: int, now: datetime) -> bool:
    return bool(
        WebhookDelivery.objects.filter(
            pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        )
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .update(locked_until=now + timedelta(seconds=_lease_seconds()))
    )


@dataclass
class _Result:
    headers: dict[str, str]
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    duration_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _post(url: str, payload: bytes, secret: str) -> _Result:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Stripe-Signature": sign(payload, secret, int(time.time())),
    }
    result = _Result(headers=headers)
    started = time.perf_counter()
    problem = url_problem(url)
    if problem:
        result.error = f"URL refused: {problem}"
        return result
    timeout = httpx.Timeout(
        connect=settings.PAYLAB_WEBHOOK_CONNECT_TIMEOUT,
        read=settings.PAYLAB_WEBHOOK_READ_TIMEOUT,
        write=settings.PAYLAB_WEBHOOK_READ_TIMEOUT,
        pool=settings.PAYLAB_WEBHOOK_CONNECT_TIMEOUT,
    )
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("POST", url, content=payload, headers=headers) as response,
        ):
            result.status_code = response.status_code
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= RESPONSE_EXCERPT_BYTES:
                    break
            result.excerpt = body[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")
    except httpx.TimeoutException as error:
        result.error = f"timeout: {type(error).__name__}"
    except httpx.HTTPError as error:
        result.error = f"{type(error).__name__}: {str(error)[:300]}"
    finally:
        result.duration_ms = int((time.perf_counter() - started) * 1000)
    if result.status_code is not None and not result.delivered and not result.error:
        result.error = f"HTTP {result.status_code}"
    return result


def webhook_deliver(*, delivery_id: int, now: datetime | None = None) -> Outcome:
    """Make one attempt of a pending, due delivery (see the module docstring).

    Idempotent: a delivery that is not pending, not due or held by another
    worker is skipped. The HTTP request runs outside any transaction; its
    result is recorded in one."""
    now = now or timezone.now()
    if not _claim(delivery_id, now):
        return Outcome("skipped")
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint.deleted_at is not None or endpoint.status != WebhookEndpoint.Status.ENABLED:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=WebhookDelivery.Status.FAILED,
            last_error="endpoint disabled",
            locked_until=None,
        )
        return Outcome("failed")
    payload = json.dumps(presenters.event(delivery.event), separators=(",", ":")).encode()
    result = _post(endpoint.url, payload, endpoint.secret)
    return _record(delivery_id, endpoint.url, result, now)


@transaction.atomic
def _record(delivery_id: int, url: str, result: _Result, now: datetime) -> Outcome:
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    number = WebhookAttempt.objects.filter(delivery=delivery).count() + 1
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        created=now,
        url=url,
        request_headers=result.headers,
        status_code=result.status_code,
        response_excerpt=result.excerpt,
        duration_ms=result.duration_ms,
        error=result.error[:500],
    )
    delivery.attempts += 1
    delivery.locked_until = None
    if result.delivered:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        delivery.last_error = ""
        delivery.save()
        if endpoint.failing_since is not None:
            endpoint.failing_since = None
            endpoint.save(update_fields=["failing_since"])
        return Outcome("succeeded", number)
    delivery.last_error = result.error[:500]
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        endpoint.save(update_fields=["failing_since"])
    failing_for = now - endpoint.failing_since
    if failing_for >= timedelta(hours=settings.PAYLAB_WEBHOOK_DISABLE_AFTER_HOURS):
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
        delivery.save()
        _disable(endpoint, failing_for)
        return Outcome("failed", number)
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
        delivery.save()
        return Outcome("failed", number)
    delay = retry_delay(delivery.attempts)
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    delivery.save()
    return Outcome("retrying", number, delay)


def _disable(endpoint: WebhookEndpoint, failing_for: timedelta) -> None:
    endpoint.status = WebhookEndpoint.Status.DISABLED
    endpoint.disabled_reason = f"disabled automatically: every attempt failed for {failing_for.total_seconds() / 3600:.1f} h"
    endpoint.save(update_fields=["status", "disabled_reason"])
    endpoint.deliveries.filter(status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED,
        last_error="endpoint disabled",
        next_attempt_at=None,
        locked_until=None,
    )
    log.warning("webhook endpoint %s disabled: %s", endpoint.pk, endpoint.disabled_reason)


def webhook_deliveries_due(
    *, now: datetime | None = None, limit: int = 500, older_than: float = 0.0
) -> list[int]:
    """Pending deliveries whose attempt is due and not held: the sweep's work.

    `older_than` leaves alone those due for less than that many seconds: they
    have a task queued (on commit, or an ETA retry) that has not run yet, and
    queueing another every sweep would only multiply the queue in a burst."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at__lte=now - timedelta(seconds=older_than),
        )
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def webhook_resend(
    *,
    merchant: Merchant,
    endpoint_id: str,
    event_id: str | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Deliver again one event, or every event since `since` that this endpoint
    subscribes to and has not received. The delivery restarts its retry
    schedule (the attempt log keeps counting). Queues the attempts on commit;
    returns the delivery ids."""
    now = now or timezone.now()
    endpoint = get_endpoint(merchant_id=merchant.pk, endpoint_id=endpoint_id, lock=True)
    if endpoint.status != WebhookEndpoint.Status.ENABLED:
        raise InvalidRequestError(
            "This webhook endpoint is disabled; enable it before resending.", param="id"
        )
    if (event_id is None) == (since is None):
        raise InvalidRequestError("Pass exactly one of `event` and `since`.", param="event")
    events = Event.objects.filter(merchant_id=merchant.pk)
    if event_id is not None:
        events = events.filter(pk=event_id)
        if not events.exists():
            raise missing("event", event_id, param="event")
    else:
        events = events.filter(created__gte=since)
    wanted = [
        e
        for e in events.only("id", "type", "merchant_id").order_by("pk")
        if event_id is not None or endpoint.subscribes_to(e.type)
    ]
    delivered = set(
        WebhookDelivery.objects.filter(
            endpoint=endpoint,
            event_id__in=[e.pk for e in wanted],
            status=WebhookDelivery.Status.SUCCEEDED,
        ).values_list("event_id", flat=True)
    )
    if event_id is None:
        wanted = [e for e in wanted if e.pk not in delivered]
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(endpoint=endpoint, event=e, merchant_id=merchant.pk, created=now)
            for e in wanted
        ],
        ignore_conflicts=True,
    )
    query = WebhookDelivery.objects.filter(endpoint=endpoint, event_id__in=[e.pk for e in wanted])
    query.update(
        status=WebhookDelivery.Status.PENDING,
        attempts=0,
        next_attempt_at=now,
        locked_until=None,
        last_error="",
    )
    delivery_ids = list(query.values_list("pk", flat=True))
    transaction.on_commit(lambda: _queue(delivery_ids))
    return delivery_ids


def _queue(delivery_ids: list[int]) -> None:
    from payments.services.outbox import _queue_deliveries

    _queue_deliveries(delivery_ids)


# --- verify ------------------------------------------------------------------------


@register("every event reached every subscribed webhook endpoint or is scheduled")
def check_webhook_deliveries(report: Report) -> None:
    """For every enabled endpoint: each event of its merchant published since
    it was (re-)enabled, of a type it subscribes to, is delivered or pending.

    Disabled and deleted endpoints are exempt (their failure is flagged on
    them). Unpublished events are exempt: the relay will owe them."""
    for endpoint in WebhookEndpoint.objects.filter(
        status=WebhookEndpoint.Status.ENABLED, deleted_at__isnull=True
    ):
        report.checked["webhook endpoints"] += 1
        published = OutboxMessage.objects.filter(
            merchant_id=endpoint.merchant_id, published_at__gt=endpoint.enabled_at
        ).values_list("event_id", "event__type")
        states = dict(
            WebhookDelivery.objects.filter(endpoint=endpoint).values_list("event_id", "status")
        )
        for event_id, event_type in published.iterator(chunk_size=2000):
            if not endpoint.subscribes_to(event_type):
                continue
            report.checked["webhook deliveries"] += 1
            state = states.get(event_id)
            if state is None:
                report.fail(f"event {event_id} was never owed to webhook endpoint {endpoint.pk}")
            elif state == WebhookDelivery.Status.FAILED:
                report.fail(
                    f"event {event_id} failed to reach webhook endpoint {endpoint.pk} "
                    "(retries exhausted; resend it)"
                )
