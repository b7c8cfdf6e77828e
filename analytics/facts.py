"""Facts: what one event contributes to the rollups, derived twice — in
Python for the incremental projector and in SQL for the set-based rebuild
and `verify` — from the same inputs, so the two agree row for row
(tests/analytics/test_rollups.py proves it).

A *charge fact* comes from an event that moves money or decides a charge:

| event                    | outcome        | amount            |
| ------------------------ | -------------- | ----------------- |
| `charge.succeeded`       | succeeded      | the charge amount |
| `charge.failed`          | failed (+code) | the charge amount |
| `refund.created`         | refunded       | the refund amount |
| `refund.failed`          | refund_failed  | the refund amount |
| `charge.dispute.created` | disputed       | the dispute amount|

Its time is the event's; amount, currency and decline code come from the
event's snapshot; the processor from the charge snapshot
(`paylab.processor`, or `outcome.paylab.processor`), else the charge row;
method, brand and BIN from the charge's payment method (immutable), and the
latency from the deciding (last) processor attempt on the charge row. 3-D
Secure authentication failures are not charges and are not counted.

A *status fact* comes from every status-changing event: -1 for the old
status and +1 for the new, in the bucket of the payment's creation time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection

from analytics.models import LATENCY_BOUNDS_MS, Outcome
from payments.models import Charge, Event, OutboxMessage, PaymentIntent, PaymentMethod
from payments.processing import BUILTIN_PROCESSOR

FACT_TYPES: dict[str, str] = {
    "charge.succeeded": Outcome.SUCCEEDED,
    "charge.failed": Outcome.FAILED,
    "refund.created": Outcome.REFUNDED,
    "refund.failed": Outcome.REFUND_FAILED,
    "charge.dispute.created": Outcome.DISPUTED,
}
# Events whose snapshot is the charge itself; the others name it in `charge`.
CHARGE_SNAPSHOTS = frozenset({"charge.succeeded", "charge.failed"})


@dataclass(frozen=True)
class ChargeFact:
    ts: int
    merchant_id: int
    processor: str
    currency: str
    method: str
    brand: str
    bin: str
    customer_id: str | None
    outcome: str
    code: str
    amount: int
    latency_bucket: int | None


@dataclass(frozen=True)
class StatusFact:
    ts: int
    merchant_id: int
    status: str
    delta: int


def latency_bucket(latency_ms: float | None) -> int | None:
    if latency_ms is None:
        return None
    for index, bound in enumerate(LATENCY_BOUNDS_MS):
        if latency_ms < bound:
            return index
    return len(LATENCY_BOUNDS_MS)


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _first(*values: Any, default: str) -> str:
    for value in values:
        if value not in (None, ""):
            return str(value)
    return default


def _charge_id(event: Event) -> str:
    key = "id" if event.type in CHARGE_SNAPSHOTS else "charge"
    return _text(_dig(event.data, key))


def charge_facts(events: Iterable[Event]) -> list[ChargeFact]:
    """The charge facts of these events (one query for their charges)."""
    relevant = [e for e in events if e.type in FACT_TYPES]
    charges: dict[str, dict[str, Any]] = {
        row["id"]: dict(row)
        for row in Charge.objects.filter(pk__in={_charge_id(e) for e in relevant}).values(
            "id",
            "processor",
            "customer_id",
            "outcome",
            "payment_method__type",
            "payment_method__brand",
            "payment_method__bin",
        )
    }
    facts = []
    for event in relevant:
        data = event.data or {}
        charge = charges.get(_charge_id(event), {})
        method = _first(charge.get("payment_method__type"), default=PaymentMethod.Type.CARD)
        outcome = FACT_TYPES[event.type]
        latency = None
        if event.type in CHARGE_SNAPSHOTS:
            attempts = _dig(charge.get("outcome"), "paylab", "attempts")
            if isinstance(attempts, list) and attempts:
                raw = _dig(attempts[-1], "latency_ms")
                latency = None if raw is None else float(raw)
        facts.append(
            ChargeFact(
                ts=int(event.created.timestamp()),
                merchant_id=event.merchant_id,
                processor=_first(
                    _dig(data, "paylab", "processor"),
                    _dig(data, "outcome", "paylab", "processor"),
                    charge.get("processor"),
                    _dig(charge.get("outcome"), "paylab", "processor"),
                    default=BUILTIN_PROCESSOR,
                ),
                currency=_text(data.get("currency")).lower(),
                method=method,
                brand=_first(
                    charge.get("payment_method__brand"),
                    charge.get("payment_method__type"),
                    default=PaymentMethod.Type.CARD,
                ),
                bin=_text(charge.get("payment_method__bin")),
                customer_id=charge.get("customer_id"),
                outcome=outcome,
                code=(
                    _first(
                        _dig(data, "outcome", "reason"), data.get("failure_code"), default="unknown"
                    )
                    if outcome == Outcome.FAILED
                    else ""
                ),
                amount=int(data.get("amount") or 0),
                latency_bucket=latency_bucket(latency),
            )
        )
    return facts


def status_facts(events: Iterable[Event]) -> list[StatusFact]:
    moves = [
        e
        for e in events
        if e.payment_intent_id and (e.from_status or e.to_status) and e.from_status != e.to_status
    ]
    created = dict(
        PaymentIntent.objects.filter(pk__in={e.payment_intent_id for e in moves}).values_list(
            "pk", "created"
        )
    )
    facts = []
    for event in moves:
        ts = int(created[str(event.payment_intent_id)].timestamp())
        if event.from_status:
            facts.append(StatusFact(ts, event.merchant_id, event.from_status, -1))
        if event.to_status:
            facts.append(StatusFact(ts, event.merchant_id, event.to_status, 1))
    return facts


# --- The same in SQL ----------------------------------------------------------


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _json_text(column: str, *path: str | int) -> str:
    """`column`'s value at `path` as text (NULL when absent); -1 is the last item."""
    if _postgres():
        parts = "".join(f"->({p})" if isinstance(p, int) else f"->'{p}'" for p in path[:-1])
        last = path[-1]
        return f"({column}{parts}->>{last if isinstance(last, int) else repr(last)})"
    json_path = "$"
    for p in path:
        json_path += "[#-1]" if p == -1 else f"[{p}]" if isinstance(p, int) else f".{p}"
    return f"json_extract({column}, '{json_path}')"


def epoch(column: str) -> str:
    if _postgres():
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"
    return f"CAST(strftime('%%s', {column}) AS INTEGER)"


def _number(expr: str) -> str:
    return f"CAST({expr} AS {'DOUBLE PRECISION' if _postgres() else 'REAL'})"


def _integer(expr: str) -> str:
    return f"CAST({expr} AS BIGINT)"


def _latency_bucket_sql(latency: str) -> str:
    cases = " ".join(
        f"WHEN {latency} < {bound} THEN {index}" for index, bound in enumerate(LATENCY_BOUNDS_MS)
    )
    return f"CASE WHEN {latency} IS NULL THEN NULL {cases} ELSE {len(LATENCY_BOUNDS_MS)} END"


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def covered_sql(alias: str) -> str:
    """Events a projector at checkpoint %s has counted or will never see:
    every event but those whose outbox row is unpublished or published
    after the checkpoint. A bulk-loaded event with no outbox row, or with
    one loaded as already published without a position (`manage.py seed`:
    history is not news), counts — the projector never reads it.
    One parameter: the checkpoint position.

    NOT EXISTS, not NOT IN: an anti-join on the outbox's event index, where
    NOT IN over millions of unpublished rows would overflow work_mem into a
    subplan rescanned per event."""
    outbox = OutboxMessage._meta.db_table
    return (
        f"NOT EXISTS (SELECT 1 FROM {outbox} o WHERE o.event_id = {alias}.id "  # noqa: S608
        "AND (o.published_at IS NULL OR o.position > %s))"
    )


def charge_facts_sql() -> str:
    """SELECT of every covered charge fact (columns as ChargeFact); one
    parameter, the checkpoint position."""
    event = Event._meta.db_table
    charge = Charge._meta.db_table
    pm = PaymentMethod._meta.db_table
    snapshots = _quoted(sorted(CHARGE_SNAPSHOTS))
    outcome_case = " ".join(f"WHEN '{t}' THEN '{o}'" for t, o in FACT_TYPES.items())
    latency = _number(_json_text("c.outcome", "paylab", "attempts", -1, "latency_ms"))
    return f"""
        SELECT {epoch("e.created")} AS ts,
               e.merchant_id AS merchant_id,
               COALESCE(NULLIF({_json_text("e.data", "paylab", "processor")}, ''),
                        NULLIF({_json_text("e.data", "outcome", "paylab", "processor")}, ''),
                        NULLIF(c.processor, ''),
                        NULLIF({_json_text("c.outcome", "paylab", "processor")}, ''),
                        '{BUILTIN_PROCESSOR}') AS processor,
               LOWER(COALESCE({_json_text("e.data", "currency")}, '')) AS currency,
               COALESCE(NULLIF(pm.type, ''), 'card') AS method,
               COALESCE(NULLIF(pm.brand, ''), NULLIF(pm.type, ''), 'card') AS brand,
               COALESCE(pm.bin, '') AS bin,
               c.customer_id AS customer_id,
               CASE e.type {outcome_case} END AS outcome,
               CASE WHEN e.type = 'charge.failed'
                    THEN COALESCE(NULLIF({_json_text("e.data", "outcome", "reason")}, ''),
                                  NULLIF({_json_text("e.data", "failure_code")}, ''), 'unknown')
                    ELSE '' END AS code,
               COALESCE({_integer(_json_text("e.data", "amount"))}, 0) AS amount,
               CASE WHEN e.type IN ({snapshots}) THEN {_latency_bucket_sql(latency)} END
                   AS latency_bucket
        FROM {event} e
        LEFT JOIN {charge} c ON c.id = CASE WHEN e.type IN ({snapshots})
                                            THEN {_json_text("e.data", "id")}
                                            ELSE {_json_text("e.data", "charge")} END
        LEFT JOIN {pm} pm ON pm.id = c.payment_method_id
        WHERE e.type IN ({_quoted(FACT_TYPES)}) AND {covered_sql("e")}
    """  # noqa: S608


def status_facts_sql() -> str:
    """SELECT of every covered status fact; two parameters (the checkpoint, twice)."""
    event = Event._meta.db_table
    intent = PaymentIntent._meta.db_table
    head = f"SELECT {epoch('p.created')} AS ts, e.merchant_id AS merchant_id"
    body = f"FROM {event} e JOIN {intent} p ON p.id = e.payment_intent_id"
    moved = "e.from_status <> e.to_status"
    return f"""
        {head}, e.to_status AS status, 1 AS delta {body}
        WHERE e.to_status <> '' AND {moved} AND {covered_sql("e")}
        UNION ALL
        {head}, e.from_status AS status, -1 AS delta {body}
        WHERE e.from_status <> '' AND {moved} AND {covered_sql("e")}
    """
