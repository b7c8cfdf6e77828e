"""Processors as data: circuit breakers, outages, import and export.

Breaker state is one `ProcessorBreaker` row per processor, changed only
under `select_for_update`, so every web process, worker and command shares
one breaker. Each state change appends a `ProcessorEvent`
(`paylab.processor.circuit_opened`, `…circuit_half_opened`,
`…circuit_closed`) in the same transaction. These are operational events of
PayLab itself, not of a merchant: they do not go to merchants' event lists
or webhooks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Merchant
from config.errors import InvalidRequestError
from payments import ids, processing
from payments.errors import missing
from payments.models import (
    Processor,
    ProcessorBreaker,
    ProcessorEvent,
    ProcessorOutage,
    RoutingRule,
)
from payments.processors import breaker

EVENT_TYPES = {
    breaker.OPEN: "paylab.processor.circuit_opened",
    breaker.HALF_OPEN: "paylab.processor.circuit_half_opened",
    breaker.CLOSED: "paylab.processor.circuit_closed",
}
PROCESSOR_FIELDS = (
    "display_name",
    "description",
    "enabled",
    "priority",
    "methods",
    "currencies",
    "min_amount",
    "max_amount",
    "latency_p50_ms",
    "latency_p99_ms",
    "soft_decline_rate_bp",
    "timeout_rate_bp",
    "unavailable_rate_bp",
    "timeout_ms",
    "fees",
    "authorization_lifetime_hours",
    "breaker_failure_threshold",
    "breaker_failure_rate_bp",
    "breaker_window_seconds",
    "breaker_open_seconds",
    "breaker_half_open_probes",
    "breaker_close_after_successes",
)
RULE_FIELDS = (
    "position",
    "enabled",
    "bin_prefixes",
    "min_amount",
    "max_amount",
    "currencies",
    "methods",
    "targets",
)


def _event(
    *,
    processor: str,
    type: str,
    now: datetime,
    reason: str = "",
    change: breaker.Change | None = None,
    data: dict[str, Any] | None = None,
) -> ProcessorEvent:
    return ProcessorEvent.objects.create(
        id=ids.new_id("evt", now),
        processor=processor,
        type=type,
        from_state=change.from_state if change else "",
        to_state=change.to_state if change else "",
        reason=change.reason if change else reason,
        data=data or {},
        created=now,
    )


def _lock_breaker(
    name: str,
) -> tuple[ProcessorBreaker, breaker.BreakerState, breaker.BreakerConfig]:
    processor = Processor.objects.filter(name=name).first()
    if processor is None:
        raise missing("processor", name, param="processor")
    row, _ = ProcessorBreaker.objects.get_or_create(processor=processor)
    row = ProcessorBreaker.objects.select_for_update().select_related("processor").get(pk=row.pk)
    return row, breaker.BreakerState.from_dict(row.data), processing.breaker_config(processor)


def _save(
    row: ProcessorBreaker,
    state: breaker.BreakerState,
    change: breaker.Change | None,
    now: datetime,
    *,
    payment_intent: str = "",
) -> bool:
    """Store the state; a change of state is an event (naming the payment
    whose attempt caused it, if one did). Whether the state changed."""
    row.data = state.as_dict()
    changed = change is not None and change.from_state != change.to_state
    if change is not None and changed:
        row.state = change.to_state
        row.changed_at = now
        _event(
            processor=row.processor.name,
            type=EVENT_TYPES[change.to_state],
            now=now,
            change=change,
            data={"payment_intent": payment_intent} if payment_intent else None,
        )
    row.save()
    # This process sees its own change at once; others within the cache TTL.
    transaction.on_commit(processing.invalidate)
    processing.invalidate()
    return changed


def breaker_claim_probe(*, name: str, now: datetime) -> bool:
    """Let one half-open probe through, if none is in flight. Caller's transaction."""
    row, state, config = _lock_breaker(name)
    allowed, change = breaker.allow(state, now.timestamp(), config)
    _save(row, state, change, now)
    return allowed


class _UnreportedSuccesses:
    """Successes on closed breakers, per processor and second, that this
    process has not written yet: a success writes nothing (the healthy path
    costs no database work), so they join the breaker row with this
    process's next failure of that processor, which needs them for the
    failure rate. A process that never fails one never reports its
    successes — the rate can only be overestimated, never hidden. Kept for
    an hour at most."""

    KEEP_SECONDS = 3_600

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[int, int]] = {}

    def add(self, name: str, second: int) -> None:
        with self._lock:
            counts = self._counts.setdefault(name, {})
            counts[second] = counts.get(second, 0) + 1
            if len(counts) > 2 * self.KEEP_SECONDS:
                horizon = second - self.KEEP_SECONDS
                self._counts[name] = {s: n for s, n in counts.items() if s > horizon}

    def take(self, name: str) -> dict[int, int]:
        with self._lock:
            return self._counts.pop(name, {})

    def forget(self, name: str | None = None) -> None:
        """After a reset or a change of settings: the old successes no
        longer describe the processor."""
        with self._lock:
            if name is None:
                self._counts.clear()
            else:
                self._counts.pop(name, None)


_unreported = _UnreportedSuccesses()


def breakers_record(
    *, results: Iterable[list[Any]], now: datetime, payment_intent: str = ""
) -> list[dict[str, str]]:
    """Account for the attempts of one confirmation (caller's transaction);
    the state changes they caused, for the payment's record.

    A success on a closed breaker changes nothing and touches no row, so the
    healthy path costs no database work; failures and probes lock the row.
    """
    changes: list[dict[str, str]] = []
    for name, success, probe in results:
        if success and not probe:
            _unreported.add(name, int(now.timestamp()))
            continue
        if not Processor.objects.filter(name=name).exists():
            continue
        row, state, config = _lock_breaker(name)
        if probe and state.state != breaker.HALF_OPEN:
            continue  # reset or forced meanwhile: the probe no longer counts
        change = breaker.record(
            state,
            success=bool(success),
            now=now.timestamp(),
            config=config,
            successes=_unreported.take(name),
        )
        if _save(row, state, change, now, payment_intent=payment_intent) and change is not None:
            changes.append(
                {
                    "processor": name,
                    "from": change.from_state,
                    "to": change.to_state,
                    "reason": change.reason,
                }
            )
    return changes


@transaction.atomic
def processor_breaker_force_open(*, name: str, now: datetime | None = None) -> ProcessorBreaker:
    """An operator opens the breaker until a reset. Appends `circuit_opened`."""
    now = now or timezone.now()
    row, state, _ = _lock_breaker(name)
    change = breaker.force_open(state, now.timestamp())
    if change.from_state == breaker.OPEN:
        _event(processor=name, type=EVENT_TYPES[breaker.OPEN], now=now, change=change)
    _save(row, state, change, now)
    return row


@transaction.atomic
def processor_breaker_reset(*, name: str, now: datetime | None = None) -> ProcessorBreaker:
    """Close the breaker and forget its failures. Appends `circuit_closed`."""
    now = now or timezone.now()
    row, state, _ = _lock_breaker(name)
    change = breaker.reset(state)
    _unreported.forget(name)
    if change.from_state == breaker.CLOSED:
        _event(processor=name, type=EVENT_TYPES[breaker.CLOSED], now=now, change=change)
    _save(row, state, change, now)
    return row


@transaction.atomic
def processor_outage_schedule(
    *,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    kind: str = ProcessorOutage.Kind.OUTAGE,
    error_rate_bp: int | None = None,
    error_code: str = "processor_unavailable",
    latency_multiplier_pct: int = 100,
    note: str = "",
    now: datetime | None = None,
) -> ProcessorOutage:
    """Schedule an outage (every request fails) or a brownout (some fail,
    slower). Appends `paylab.processor.outage_scheduled`."""
    now = now or timezone.now()
    processor = Processor.objects.filter(name=name).first()
    if processor is None:
        raise missing("processor", name, param="processor")
    if kind not in ProcessorOutage.Kind.values:
        raise InvalidRequestError("kind must be outage or brownout.", param="kind")
    if ends_at <= starts_at:
        raise InvalidRequestError("ends_at must be after starts_at.", param="ends_at")
    if error_code not in processing.RETRYABLE:
        raise InvalidRequestError(
            "error_code must be timeout or processor_unavailable.", param="error_code"
        )
    if error_rate_bp is None:
        error_rate_bp = 10_000 if kind == ProcessorOutage.Kind.OUTAGE else 2_000
    if not 0 <= error_rate_bp <= 10_000:
        raise InvalidRequestError(
            "error_rate_bp must be between 0 and 10000.", param="error_rate_bp"
        )
    if not 100 <= latency_multiplier_pct <= 10_000:
        raise InvalidRequestError(
            "latency_multiplier_pct must be between 100 and 10000.", param="latency_multiplier_pct"
        )
    outage = ProcessorOutage.objects.create(
        processor=processor,
        kind=kind,
        starts_at=starts_at,
        ends_at=ends_at,
        error_rate_bp=error_rate_bp,
        error_code=error_code,
        latency_multiplier_pct=latency_multiplier_pct,
        note=note,
        created=now,
    )
    _event(
        processor=name,
        type="paylab.processor.outage_scheduled",
        now=now,
        reason=f"{kind} from {starts_at.isoformat()} to {ends_at.isoformat()}",
        data={
            "outage": outage.pk,
            "kind": kind,
            "error_rate_bp": error_rate_bp,
            "error_code": error_code,
            "latency_multiplier_pct": latency_multiplier_pct,
        },
    )
    transaction.on_commit(processing.invalidate)
    return outage


def processor_outage_schedule_for(
    *, name: str, minutes: float, now: datetime | None = None, **kwargs: Any
) -> ProcessorOutage:
    """Convenience for the dashboard and simulator: starting now, for `minutes`."""
    now = now or timezone.now()
    return processor_outage_schedule(
        name=name, starts_at=now, ends_at=now + timedelta(minutes=minutes), now=now, **kwargs
    )


@transaction.atomic
def processor_update(
    *, name: str, changes: dict[str, Any], actor: str = "", now: datetime | None = None
) -> Processor:
    """An operator's change to one processor's settings (the dashboard's
    form; the admin and `processors import` are the other ways). Validated
    by the model as an import is; a refused value names its field. Appends
    `paylab.processor.updated` with what changed, so a behaviour change on
    the processors page has its cause next to it."""
    now = now or timezone.now()
    unknown = set(changes) - set(PROCESSOR_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidRequestError(f"Received unknown parameter: {field}", param=field)
    processor = Processor.objects.select_for_update().filter(name=name).first()
    if processor is None:
        raise missing("processor", name, param="processor")
    before = {field: getattr(processor, field) for field in changes}
    for field, value in changes.items():
        setattr(processor, field, value)
    try:
        processor.full_clean()
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        if field == NON_FIELD_ERRORS:
            field = "latency_p99_ms"  # the one cross-field rule: p99 >= p50
            messages = ["The p99 latency must be at least the p50."]
        raise InvalidRequestError(f"Invalid {field}: {messages[0]}", param=field) from None
    changed = {f: v for f, v in changes.items() if before[f] != v}
    if not changed:
        return processor
    processor.updated = now
    processor.save()
    _event(
        processor=name,
        type="paylab.processor.updated",
        now=now,
        reason=(f"by {actor}: " if actor else "")
        + ", ".join(f"{f} {before[f]} → {v}" for f, v in changed.items())[:280],
        data={"changes": changed, "actor": actor},
    )
    _unreported.forget(name)
    transaction.on_commit(processing.invalidate)
    return processor


# --- Import and export ---------------------------------------------------------------


def processors_export() -> dict[str, Any]:
    """The processors and routing rules as one JSON document."""
    return {
        "processors": [
            {"name": p.name, **{f: getattr(p, f) for f in PROCESSOR_FIELDS}}
            for p in Processor.objects.order_by("priority", "name")
        ],
        "rules": [
            {
                "name": r.name,
                **{f: getattr(r, f) for f in RULE_FIELDS},
                "merchants": sorted(m.slug for m in r.merchants.all()),
            }
            for r in RoutingRule.objects.prefetch_related("merchants").order_by("position", "id")
        ],
    }


@transaction.atomic
def processors_import(*, document: dict[str, Any], replace_rules: bool = True) -> tuple[int, int]:
    """Create or update processors by name and (by default) replace the
    routing rules. Validated before anything is written; all or nothing."""
    if not isinstance(document, dict):
        raise InvalidRequestError("The document must be a JSON object.")
    items = document.get("processors") or []
    rules = document.get("rules")
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("name"):
            raise InvalidRequestError(
                f"processors[{index}] needs a name.", param=f"processors[{index}]"
            )
        unknown = set(item) - {"name", *PROCESSOR_FIELDS}
        if unknown:
            raise InvalidRequestError(
                f"processors[{index}] has unknown fields: {', '.join(sorted(unknown))}.",
                param=f"processors[{index}]",
            )
    for item in items:
        processor = Processor.objects.filter(name=item["name"]).first() or Processor(
            name=item["name"]
        )
        for name in PROCESSOR_FIELDS:
            if name in item:
                setattr(processor, name, item[name])
        processor.updated = timezone.now()
        processor.full_clean()
        processor.save()
        ProcessorBreaker.objects.get_or_create(processor=processor)
    count_rules = 0
    if rules is not None:
        if replace_rules:
            RoutingRule.objects.all().delete()
        for index, rule in enumerate(rules):
            unknown = set(rule) - {"name", "merchants", *RULE_FIELDS}
            if unknown or not rule.get("name") or not rule.get("targets"):
                raise InvalidRequestError(
                    f"rules[{index}] needs a name and targets and only known fields.",
                    param=f"rules[{index}]",
                )
            row = RoutingRule.objects.filter(name=rule["name"]).first() or RoutingRule(
                name=rule["name"]
            )
            for name in RULE_FIELDS:
                if name in rule:
                    setattr(row, name, rule[name])
            row.save()
            row.merchants.set(Merchant.objects.filter(slug__in=rule.get("merchants") or []))
            count_rules += 1
    _unreported.forget()
    transaction.on_commit(processing.invalidate)
    return len(items), count_rules
