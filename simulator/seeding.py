"""Historical seeding: a million payments in a minute, shaped exactly as the
payment services shape them.

Record, then replay. For each *shape* (an outcome, card and currency: paid,
paid and refunded in full or in part, declined for each reason, authorised
then captured or voided, disputed and won, lost or still open) the real
services run once, inside a transaction that is rolled back, with sentinel
amounts and clock values. Every row they wrote — payment method, payment
intent, charge, refund, dispute, ledger transactions and entries, events
with their snapshots, sequences and deltas — is captured and
turned into a row template, where the ids, the amounts (and what derives
from them: fee, net, negations) and the timestamps are placeholders. Seeding
a payment is then filling a shape's templates with fresh ids, its amount,
the fee the processor charges on it, and its historical times, and writing
them in bulk: PostgreSQL `COPY` (psycopg 3 `cursor.copy`), batched
`executemany` on SQLite.

So no domain logic is duplicated here: the event log, the ledger and the
projections are what the services produce, and `manage.py verify` passes.
History is not news: the outbox rows the services wrote are not replayed.
An outbox row exists so that a committed event leaves the database (DESIGN
rule 7); a historical event must not leave it — no websocket push, no
webhook — and nothing reads a published row again: the relay claims
unpublished rows, websocket clients resume by `position` (which history
would not have), and the analytics rebuild and `verify` count an event with
no outbox row as covered (analytics.facts.covered_sql). Leaving them out
saves a quarter of the rows (one per event) and their indexes.

Payments are written in chronological order (their creation times sorted
over the whole seed), so the time-prefixed ids of most rows arrive in
ascending order: primary-key inserts land on the right edge of each B-tree
instead of on random pages of an index larger than the buffer cache.

3-D Secure shapes are not seeded (a historical challenge is of no use);
live 3DS traffic is the simulator's `three_ds_eu` scenario.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from queue import Full, Queue
from typing import Any

from django.db import connection, models, transaction
from django.test.utils import override_settings
from django.utils import timezone

from accounts.models import Merchant
from payments import ids, money, processing
from payments.models import (
    Charge,
    Dispute,
    Event,
    LedgerEntry,
    LedgerTransaction,
    OutboxMessage,
    PaymentIntent,
    PaymentMethod,
    Refund,
)
from payments.services import disputes, intents, refunds

# Sentinels: an unusual amount and partial refund, and a clock far from any
# real date, so every occurrence in the captured rows is unambiguous.
AMOUNT = 7_654_321
PARTIAL = 1_234_567
T0 = datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)  # Unix 1_000_000_000
STEP = timedelta(seconds=100_000)  # step k of a shape happens at T0 + k * STEP

# (name, card, manual, steps after the confirmation, weight in the mix)
SHAPES: list[tuple[str, str, bool, tuple[str, ...], float]] = [
    ("paid_visa", "pm_card_visa", False, (), 40),
    ("paid_mastercard", "pm_card_mastercard", False, (), 22),
    ("paid_amex", "pm_card_amex", False, (), 6),
    ("paid_visa_debit", "pm_card_visa_debit", False, (), 5),
    ("refunded", "pm_card_visa", False, ("refund_full",), 3),
    ("refunded_partly", "pm_card_mastercard", False, ("refund_partial",), 2),
    ("captured", "pm_card_visa", True, ("capture",), 6),
    ("captured_refunded", "pm_card_visa", True, ("capture", "refund_partial"), 1),
    ("voided", "pm_card_mastercard", True, ("cancel",), 1),
    ("declined_generic", "pm_card_visa_chargeDeclined", False, (), 4),
    ("declined_funds", "pm_card_visa_chargeDeclinedInsufficientFunds", False, (), 4),
    ("declined_cvc", "pm_card_chargeDeclinedIncorrectCvc", False, (), 1),
    ("declined_expired", "pm_card_chargeDeclinedExpiredCard", False, (), 1),
    ("declined_lost", "pm_card_visa_chargeDeclinedLostCard", False, (), 0.3),
    ("declined_stolen", "pm_card_visa_chargeDeclinedStolenCard", False, (), 0.3),
    ("declined_processing", "pm_card_chargeDeclinedProcessingError", False, (), 1),
    ("blocked_fraud", "pm_card_radarBlock", False, (), 0.6),
    ("disputed_open", "pm_card_createDispute", False, (), 0.3),
    ("disputed_lost", "pm_card_createDispute", False, ("dispute_lose",), 0.3),
    ("disputed_won", "pm_card_createDispute", False, ("dispute_win",), 0.3),
    ("inquiry", "pm_card_createDisputeInquiry", False, (), 0.1),
]
CURRENCIES = {"usd": 70, "eur": 20, "gbp": 10}

# Written in this order (foreign keys are deferred: the order only matters
# for reading the code).
MODELS: list[type[models.Model]] = [
    PaymentMethod,
    PaymentIntent,
    Charge,
    LedgerTransaction,
    LedgerEntry,
    Refund,
    Dispute,
    Event,
]
# What a shape can hold: the seeded tables, and the outbox rows when asked
# (`build_shape(outbox=True)`: bench/events_bench.py replays shapes as news).
RECORDED: list[type[models.Model]] = [*MODELS, OutboxMessage]
_SKIPPED_COLUMNS: dict[type[models.Model], set[str]] = {LedgerEntry: {"id"}, OutboxMessage: {"id"}}


class _Rollback(Exception):
    pass


# --- Templates -----------------------------------------------------------------


_FIELD = re.compile(r"\{(\w+)\}")


@dataclass
class ColumnTemplate:
    pg: str  # COPY text format (escaped), with {placeholders}
    sqlite: str
    null: bool = False
    names: tuple[str, ...] = ()


@dataclass
class RowTemplate:
    model: type[models.Model]
    columns: list[ColumnTemplate]


@dataclass
class Shape:
    name: str
    currency: str
    rows: list[RowTemplate]
    # (step, seconds after it) of every time placeholder.
    times: set[tuple[int, int]] = field(default_factory=set)
    # Per model, every row of the shape as ONE format string of COPY lines:
    # filling a payment is one `format_map` per table (`_compile`).
    copy_lines: list[tuple[type[models.Model], str, int]] = field(default_factory=list)
    id_kinds: dict[str, str] = field(default_factory=dict)  # placeholder → id prefix
    id_steps: dict[str, int] = field(default_factory=dict)  # placeholder → step that made it
    processor: str = ""
    dispute_fee: int = 0
    partial: bool = False
    steps: int = 0


def _copy_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _columns(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    skipped = _SKIPPED_COLUMNS.get(model, set())
    return [f for f in model._meta.concrete_fields if f.column not in skipped]


class _Templater:
    """Turns captured values into format strings with placeholders."""

    def __init__(self, ids_found: dict[str, str], numbers: dict[int, str], steps: int) -> None:
        self.steps = steps
        # Longest first: a client secret contains its payment's id.
        self.ids = sorted(ids_found.items(), key=lambda item: -len(item[0]))
        self.numbers = numbers
        self.times: set[tuple[int, int]] = set()
        self._number = re.compile(
            r"(?<![\w.])("
            + "|".join(re.escape(str(n)) for n in sorted(numbers, key=lambda n: -abs(n)))
            + r")(?![\w.])"
        )
        self._stamp = re.compile(r"(?<![\w.])(1\d{9})(?![\w.])")

    def _time_name(self, moment: datetime) -> str:
        seconds = int((moment - T0).total_seconds())
        step = max(0, min(seconds // int(STEP.total_seconds()), self.steps))
        delta = seconds - step * int(STEP.total_seconds())
        self.times.add((step, delta))
        return f"t{step}_{delta}".replace("-", "m")

    def _unix_name(self, match: re.Match[str]) -> str:
        value = int(match.group(1))
        if not (T0.timestamp() <= value < T0.timestamp() + 10 * STEP.total_seconds() + 30 * 86400):
            return match.group(0)
        return "{" + self._time_name(datetime.fromtimestamp(value, UTC)) + "_unix}"

    def text(self, value: str) -> str:
        value = value.replace("{", "{{").replace("}", "}}")
        for found, name in self.ids:
            value = value.replace(found, "{" + name + "}")
        value = self._number.sub(lambda m: "{" + self.numbers[int(m.group(1))] + "}", value)
        return self._stamp.sub(self._unix_name, value)

    def column(self, field_: models.Field[Any, Any], value: Any) -> ColumnTemplate:
        if value is None:
            return ColumnTemplate(pg="\\N", sqlite="", null=True)
        if isinstance(field_, models.JSONField):
            text = self.text(json.dumps(value))
        elif isinstance(value, bool):
            return ColumnTemplate(pg="t" if value else "f", sqlite="1" if value else "0")
        elif isinstance(value, datetime):
            text = "{" + self._time_name(value) + "}"
        elif isinstance(value, int):
            text = "{" + self.numbers[value] + "}" if value in self.numbers else str(value)
        elif isinstance(value, bytes | memoryview):
            raise ValueError(f"binary column {field_.name} is not seeded")
        else:
            text = self.text(str(value))
        names = tuple(_FIELD.findall(text))
        if not names:
            text = text.format()  # a constant: collapse the escaped braces now
        return ColumnTemplate(pg=_copy_escape(text), sqlite=text, names=names)


def _sentinel_numbers(fee: int, dispute_fee: int, partial: bool) -> dict[int, str]:
    refund = PARTIAL if partial else AMOUNT
    numbers = {
        AMOUNT: "amt",
        -AMOUNT: "namt",
        fee: "fee",
        AMOUNT - fee: "net",
        -(AMOUNT - fee): "nnet",
        PARTIAL: "ref",
        -PARTIAL: "nref",
        AMOUNT - PARTIAL: "rest",
    }
    if dispute_fee:
        numbers[AMOUNT + dispute_fee] = "dtot"
        numbers[-(AMOUNT + dispute_fee)] = "ndtot"
    if not partial:
        numbers.pop(PARTIAL)
        numbers.pop(-PARTIAL)
        numbers.pop(AMOUNT - PARTIAL)
    del refund
    return numbers


def _record(
    merchant: Merchant, card: str, manual: bool, steps: tuple[str, ...], currency: str
) -> tuple[PaymentIntent, Any]:
    """Run the services for one shape (the caller rolls back)."""
    outcome = intents.payment_intent_create(
        merchant=merchant,
        amount=AMOUNT,
        currency=currency,
        payment_method=card,
        confirm=True,
        capture_method="manual" if manual else "automatic_async",
        now=T0,
    )
    intent = outcome.intent
    for k, step in enumerate(steps, start=1):
        at = T0 + k * STEP
        if step == "capture":
            intents.payment_intent_capture(merchant=merchant, intent_id=intent.pk, now=at)
        elif step == "cancel":
            intents.payment_intent_cancel(merchant=merchant, intent_id=intent.pk, now=at)
        elif step in ("refund_full", "refund_partial"):
            refunds.refund_create(
                merchant=merchant,
                payment_intent=intent.pk,
                amount=PARTIAL if step == "refund_partial" else None,
                now=at,
            )
        elif step in ("dispute_win", "dispute_lose"):
            dispute = Dispute.objects.get(payment_intent=intent)
            disputes.dispute_close(
                merchant=merchant, dispute_id=dispute.pk, won=step == "dispute_win", now=at
            )
    return intent, outcome


def build_shape(merchant: Merchant, name: str, currency: str, *, outbox: bool = True) -> Shape:
    """Capture what the services write for one shape, as templates; with
    `outbox`, its outbox rows too, as already published (the seed asks for
    none: see the module docstring)."""
    _, card, manual, steps, _ = next(s for s in SHAPES if s[0] == name)
    captured: dict[type[models.Model], list[dict[str, Any]]] = {}
    # Processor faults and latency are random: off while recording, so the
    # shape is the card's outcome (a fault is a decline shape of its own).
    with override_settings(PAYLAB_PROCESSOR_FAULTS=False), transaction.atomic():
        try:
            with transaction.atomic():
                intent, _ = _record(merchant, card, manual, steps, currency)
                pi = intent.pk
                pm_id: str | None = PaymentIntent.objects.filter(pk=pi).values_list(
                    "payment_method_id", flat=True
                )[0]
                charge_ids = list(
                    Charge.objects.filter(payment_intent_id=pi).values_list("pk", flat=True)
                )
                pm_id = (
                    pm_id
                    or Charge.objects.filter(pk__in=charge_ids)
                    .values_list("payment_method_id", flat=True)
                    .first()
                )
                txn_ids = list(
                    LedgerTransaction.objects.filter(payment_intent_id=pi)
                    .order_by("created", "pk")
                    .values_list("pk", flat=True)
                )
                filters: dict[type[models.Model], Any] = {
                    PaymentMethod: {"pk": pm_id},
                    PaymentIntent: {"pk": pi},
                    Charge: {"payment_intent_id": pi},
                    LedgerTransaction: {"payment_intent_id": pi},
                    LedgerEntry: {"transaction_id__in": txn_ids},
                    Refund: {"payment_intent_id": pi},
                    Dispute: {"payment_intent_id": pi},
                    Event: {"payment_intent_id": pi},
                    OutboxMessage: {
                        "event_id__in": Event.objects.filter(payment_intent_id=pi).values("pk")
                    },
                }
                for model in RECORDED if outbox else MODELS:
                    names = [f.attname for f in _columns(model)]
                    order = {Event: "sequence", OutboxMessage: "id"}.get(model, "pk")
                    captured[model] = list(
                        model._default_manager.filter(**filters[model])
                        .order_by(order)
                        .values(*names)
                    )
                processor = (
                    Charge.objects.filter(pk__in=charge_ids)
                    .values_list("processor", flat=True)
                    .first()
                    or ""
                )
                secret = PaymentIntent.objects.filter(pk=pi).values_list(
                    "client_secret", flat=True
                )[0]
                raise _Rollback
        except _Rollback:
            pass
    fee = processing.capture_fee(processor=processor, amount=AMOUNT, currency=currency)
    dispute_fee = processing.dispute_fee(currency=currency) if "dispute" in card.lower() else 0
    partial = "refund_partial" in steps
    found: dict[str, str] = {pi: "pi", secret: "secret"}
    id_kinds = {"pi": "pi"}
    if pm_id:
        found[pm_id] = "pm"
        id_kinds["pm"] = "pm"
    for k, row in enumerate(captured[Charge]):
        found[row["id"]] = f"ch{k}"
        id_kinds[f"ch{k}"] = "ch"
    for model, prefix in (
        (LedgerTransaction, "txn"),
        (Refund, "re"),
        (Dispute, "dp"),
        (Event, "evt"),
    ):
        for k, row in enumerate(captured[model]):
            found[row["id"]] = f"{prefix}{k}"
            id_kinds[f"{prefix}{k}"] = prefix
    templater = _Templater(found, _sentinel_numbers(fee, dispute_fee, partial), len(steps))
    # Each id takes the time of the step that created its object, so ids
    # still sort by creation time.
    id_steps: dict[str, int] = {}
    for model in (PaymentMethod, PaymentIntent, Charge, LedgerTransaction, Refund, Dispute, Event):
        for row in captured[model]:
            placeholder = found.get(row["id"])
            if placeholder and "created" in row:
                step = int((row["created"] - T0).total_seconds() // STEP.total_seconds())
                id_steps[placeholder] = max(0, min(step, len(steps)))
    rows: list[RowTemplate] = []
    for model in RECORDED if outbox else MODELS:
        fields = _columns(model)
        for row in captured[model]:
            if model is OutboxMessage:
                # History is not news: already published, never pushed.
                row = {
                    **row,
                    "published_at": row["created"],
                    "claimed_by": "seed",
                    "attempts": 1,
                    "position": None,
                }
            if "merchant_id" in row:
                row = {**row, "merchant_id": -1}
            columns = [templater.column(f, row[f.attname]) for f in fields]
            rows.append(RowTemplate(model=model, columns=columns))
    # The merchant placeholder: captured as -1, filled per payment.
    for template in rows:
        for column in template.columns:
            if column.pg == "-1":
                column.pg = column.sqlite = "{merchant}"
                column.names = ("merchant",)
    shape = Shape(
        name=name,
        currency=currency,
        rows=rows,
        times=templater.times,
        id_kinds=id_kinds,
        id_steps=id_steps,
        processor=processor,
        dispute_fee=dispute_fee,
        partial=partial,
        steps=len(steps),
    )
    _compile(shape)
    return shape


def _literal(text: str) -> str:
    """A constant column inside a format string: its braces escaped again."""
    return text.replace("{", "{{").replace("}", "}}")


def _compile(shape: Shape) -> None:
    """Join each model's row templates into one COPY-text format string.

    Placeholder columns are format strings already (their literal braces
    escaped by `_Templater.text`); constant columns were collapsed, so their
    braces are escaped again here."""
    by_model: dict[type[models.Model], list[str]] = {}
    for template in shape.rows:
        line = "\t".join(c.pg if c.names else _literal(c.pg) for c in template.columns)
        by_model.setdefault(template.model, []).append(line)
    shape.copy_lines = [
        (model, "\n".join(by_model[model]), len(by_model[model]))
        for model in RECORDED
        if model in by_model
    ]


# --- Filling ---------------------------------------------------------------------

_B62 = ids.ALPHABET.encode()
_TRANSLATE = bytes(_B62[i % 62] for i in range(256))


class _Ids:
    """Stripe-style ids with a historical time prefix, fast: random bytes in
    bulk, mapped onto base62 (the tiny modulo bias is of no consequence for
    the uniqueness 95 random bits give)."""

    def __init__(self) -> None:
        self.pool = b""
        self.offset = 0
        # The ids of one step of a payment share their millisecond: encode it once.
        self._millis = -1
        self._encoded = ""

    def random(self, n: int) -> str:
        if self.offset + n > len(self.pool):
            self.pool = secrets.token_bytes(1 << 20).translate(_TRANSLATE)
            self.offset = 0
        chunk = self.pool[self.offset : self.offset + n]
        self.offset += n
        return chunk.decode()

    def new(self, prefix: str, millis: int) -> str:
        if millis != self._millis:
            self._millis, self._encoded = millis, ids._encode(millis, 8)
        return f"{prefix}_{self._encoded}{self.random(16)}"


def _pg_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def _sqlite_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None).isoformat(" ")


@dataclass
class SeedReport:
    payments: int = 0
    rows: int = 0
    by_shape: dict[str, int] = field(default_factory=dict)
    rebuilt_indexes: bool = False
    recording_seconds: float = 0.0  # running the services once per shape
    # Wall seconds per phase ("copy <table>" is the time inside that table's
    # COPY/INSERT calls; "load" the whole load, filling included).
    phases: dict[str, float] = field(default_factory=dict)


def _hour_weights() -> list[float]:
    # Quiet nights, a morning rise, a lunch bump and an evening peak.
    return [
        0.25,
        0.15,
        0.1,
        0.08,
        0.08,
        0.12,
        0.3,
        0.6,
        0.9,
        1.0,
        1.05,
        1.15,
        1.3,
        1.2,
        1.05,
        1.0,
        1.05,
        1.15,
        1.35,
        1.5,
        1.45,
        1.1,
        0.7,
        0.4,
    ]


WEEKDAY_WEIGHTS = [1.0, 1.02, 1.04, 1.06, 1.18, 0.8, 0.7]  # Monday … Sunday


# Seeds at least this large rebuild the secondary indexes and foreign keys
# of the tables they write instead of maintaining them row by row (when
# `indexes="auto"` and the seed at least doubles the payments table).
BULK_THRESHOLD = 50_000


def payments_seed(
    *,
    payments: int,
    days: int = 90,
    merchants: list[Merchant],
    seed: int | None = None,
    batch: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
    indexes: str = "auto",
) -> SeedReport:
    """Write `payments` historical payments over the last `days`.

    Batches are filled in a second thread while this one writes the previous
    batch (filling is Python, writing is mostly PostgreSQL's CPU: the two
    overlap on two cores). With `indexes="rebuild"` (PostgreSQL; "auto" for a
    large seed into a small table) the whole seed is one transaction that
    drops the written tables' secondary indexes and foreign keys, loads,
    then recreates and validates them — all or nothing, but the tables are
    locked for the duration: not for a live system. Otherwise each batch
    commits on its own with every index maintained."""
    now = now or timezone.now()
    rng = random.Random(seed)
    postgres = connection.vendor == "postgresql"
    shapes: dict[tuple[str, str], Shape] = {}
    recorder = merchants[0]
    recording = time.monotonic()
    for name, *_ in SHAPES:
        for currency in CURRENCIES:
            shapes[(name, currency)] = build_shape(recorder, name, currency, outbox=False)
    recorded = time.monotonic() - recording
    rebuild = postgres and (
        indexes == "rebuild"
        or (indexes == "auto" and payments >= max(BULK_THRESHOLD, _estimated_payments()))
    )
    report = SeedReport(rebuilt_indexes=rebuild, recording_seconds=recorded)
    report.phases["recording"] = recorded
    batches = _batches(
        shapes=shapes,
        payments=payments,
        days=days,
        merchant_ids=[m.pk for m in merchants],
        rng=rng,
        batch=batch,
        now=now,
        postgres=postgres,
    )
    # The fee model is read once: the processors' settings cannot change the
    # history being written, and a reload every second would cost queries.
    processing.catalog()
    with override_settings(PAYLAB_PROCESSOR_CACHE_SECONDS=10**9):
        if rebuild:
            with transaction.atomic():
                dropped = _drop_secondary(MODELS)
                _load(batches, report, payments, progress, postgres, atomic=False)
                _restore_secondary(dropped, report.phases)
                committing = time.monotonic()
            report.phases["commit"] = time.monotonic() - committing
            with _timed(report.phases, "analyze"):
                _analyze(MODELS)
        else:
            _load(batches, report, payments, progress, postgres, atomic=True)
    return report


@contextlib.contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.monotonic() - started


Batch = tuple[dict[type[models.Model], list[Any]], dict[str, int], int]


def _load(
    batches: Iterator[Batch],
    report: SeedReport,
    payments: int,
    progress: Callable[[int, int], None] | None,
    postgres: bool,
    *,
    atomic: bool,
) -> None:
    started = time.monotonic()
    for buffers, by_shape, size in _prefetched(batches):
        with transaction.atomic() if atomic else contextlib.nullcontext():
            for model in MODELS:
                rows = buffers[model]
                if not rows:
                    continue
                with _timed(report.phases, f"copy {model._meta.db_table}"):
                    report.rows += _write(model, rows, postgres)
        for name, count in by_shape.items():
            report.by_shape[name] = report.by_shape.get(name, 0) + count
        report.payments += size
        if progress:
            progress(report.payments, payments)
    report.phases["load"] = time.monotonic() - started


def _prefetched(batches: Iterator[Batch]) -> Iterator[Batch]:
    """`batches`, produced one ahead in a thread (it touches no database)."""
    queue: Queue[Batch | BaseException | None] = Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.2)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(None)
        except BaseException as error:  # re-raised in the consumer
            queue.put(error)

    producer = threading.Thread(target=produce, name="seed-fill", daemon=True)
    producer.start()
    try:
        while True:
            item = queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join(timeout=5)


def _batches(
    *,
    shapes: dict[tuple[str, str], Shape],
    payments: int,
    days: int,
    merchant_ids: list[int],
    rng: random.Random,
    batch: int,
    now: datetime,
    postgres: bool,
) -> Iterator[Batch]:
    names = [s[0] for s in SHAPES]
    weights = [s[4] for s in SHAPES]
    currencies = sorted(CURRENCIES)
    currency_weights = [CURRENCIES[c] for c in currencies]
    # Day weights: weekday pattern, a gentle growth over the period.
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    day_weights = [
        WEEKDAY_WEIGHTS[(start + timedelta(days=d)).weekday()] * (1 + 0.3 * d / max(1, days))
        for d in range(days)
    ]
    hours = _hour_weights()
    id_maker = _Ids()
    fmt_time = _pg_time if postgres else _sqlite_time
    limit = now.timestamp() - 60
    origin = start.timestamp()
    # Every creation time of the seed, drawn first and sorted: payments are
    # written in chronological order (see the module docstring).
    created = sorted(
        origin + day * 86400 + hour * 3600 + rng.random() * 3600
        for day, hour in zip(
            rng.choices(range(days), weights=day_weights, k=payments),
            rng.choices(range(24), weights=hours, k=payments),
            strict=True,
        )
    )
    done = 0
    while done < payments:
        size = min(batch, payments - done)
        buffers: dict[type[models.Model], list[Any]] = {m: [] for m in MODELS}
        by_shape: Counter[str] = Counter()
        picks = rng.choices(names, weights=weights, k=size)
        money_picks = rng.choices(currencies, weights=currency_weights, k=size)
        for k in range(size):
            shape = shapes[(picks[k], money_picks[k])]
            by_shape[shape.name] += 1
            base = min(created[done + k], limit - 86400 * 3 if shape.steps else limit)
            step_times = [base]
            for _ in range(shape.steps):
                step_times.append(min(step_times[-1] + rng.uniform(600, 86400 * 3), limit))
            values = _values(
                shape,
                rng,
                id_maker,
                step_times,
                fmt_time,
                merchant_ids[rng.randrange(len(merchant_ids))],
            )
            if postgres:
                for model, lines, _ in shape.copy_lines:
                    buffers[model].append(lines.format_map(values))
            else:
                for template in shape.rows:
                    buffers[template.model].append(
                        tuple(
                            None
                            if c.null
                            else (c.sqlite.format_map(values) if c.names else c.sqlite)
                            for c in template.columns
                        )
                    )
        done += size
        yield buffers, dict(by_shape), size


# --- Bulk mode: secondary indexes and foreign keys rebuilt around the load -------


@dataclass(frozen=True)
class _Dropped:
    indexes: list[str]  # CREATE INDEX statements
    # (table, constraint, definition, kind): unique constraints ('u', when
    # dropped) and foreign keys ('f'), in the order they were dropped.
    constraints: list[tuple[str, str, str, str]]


def _estimated_payments() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass",
            [PaymentIntent._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _drop_secondary(written: list[type[models.Model]], *, unique: bool = False) -> _Dropped:
    """Drop the non-unique indexes and the foreign keys of the written tables
    (in the caller's transaction: a failed seed rolls the drop back too).
    Primary keys stay; unique constraints and indexes stay unless `unique`
    (recreating them checks them all the same, in one sort)."""
    tables = [m._meta.db_table for m in written]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname, pg_get_indexdef(i.oid)
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = ANY(%s::regclass[]) AND NOT x.indisprimary
              AND (NOT x.indisunique OR (%s AND NOT EXISTS (
                  SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)))
            ORDER BY 1
            """,
            [tables, unique],
        )
        indexes = cursor.fetchall()
        # Foreign keys first: one may lean on a unique constraint.
        cursor.execute(
            """
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype::text
            FROM pg_constraint
            WHERE conrelid = ANY(%s::regclass[]) AND (contype = 'f' OR (%s AND contype = 'u'))
            ORDER BY contype, 1, 2
            """,
            [tables, unique],
        )
        constraints = cursor.fetchall()
        quote = connection.ops.quote_name
        for table, name, _, _ in constraints:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {quote(name)}")
    return _Dropped(
        indexes=[definition for _, definition in indexes],
        constraints=[(t, n, d, k) for t, n, d, k in constraints],
    )


def _restore_secondary(dropped: _Dropped, phases: dict[str, float], label: str = "") -> None:
    """Recreate what `_drop_secondary` dropped: one sort per index instead of a
    B-tree insert per row, one validating scan per foreign key instead of a
    trigger per row."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        with _timed(phases, f"{label}indexes"):
            for statement in dropped.indexes:
                cursor.execute(statement)
        for table, name, definition, kind in reversed(dropped.constraints):
            with _timed(phases, f"{label}{'foreign keys' if kind == 'f' else 'indexes'}"):
                cursor.execute(
                    f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}"
                )


def _analyze(written: list[type[models.Model]]) -> None:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in written:
            cursor.execute(f"ANALYZE {quote(model._meta.db_table)}")


def _values(
    shape: Shape,
    rng: random.Random,
    id_maker: _Ids,
    step_times: list[float],
    fmt_time: Callable[[float], str],
    merchant_id: int,
) -> dict[str, Any]:
    currency = shape.currency
    low = money.minimum_amount(currency) * 2
    amount = max(
        low,
        min(
            int(2500 * 10 ** money.exponent(currency) / 100 * math.exp(rng.gauss(0, 0.9))),
            9_999_999,
        ),
    )
    fee = processing.capture_fee(processor=shape.processor, amount=amount, currency=currency)
    refund = max(1, amount // 3) if shape.partial else amount
    values: dict[str, Any] = {
        "merchant": merchant_id,
        "amt": amount,
        "namt": -amount,
        "fee": fee,
        "net": amount - fee,
        "nnet": -(amount - fee),
        "ref": refund,
        "nref": -refund,
        "rest": amount - refund,
        "dtot": amount + shape.dispute_fee,
        "ndtot": -(amount + shape.dispute_fee),
    }
    for name, prefix in shape.id_kinds.items():
        at = step_times[min(shape.id_steps.get(name, 0), len(step_times) - 1)]
        values[name] = id_maker.new(prefix, int(at * 1000))
    values["secret"] = f"{values['pi']}_secret_{id_maker.random(24)}"
    for step, delta in shape.times:
        moment = step_times[min(step, len(step_times) - 1)] + delta
        name = f"t{step}_{delta}".replace("-", "m")
        values[name] = fmt_time(moment)
        values[name + "_unix"] = int(moment)
    return values


def _write(model: type[models.Model], rows: list[Any], postgres: bool) -> int:
    """Write a batch of one table; how many rows (a PostgreSQL item holds
    every row of its shape for this table, newline-separated)."""
    table = model._meta.db_table
    columns = [str(f.column) for f in _columns(model)]
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if postgres:
            text = "\n".join(rows) + "\n"
            with cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                copy.write(text)
            return text.count("\n")
        marks = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({marks})", rows)  # noqa: S608
        return len(rows)


def merchants_for_seed(count: int) -> list[Merchant]:
    """The first `count` merchants, creating `seed-merchant-N` ones if too few."""
    from accounts.services import merchant_create_with_key

    found = list(Merchant.objects.order_by("pk")[:count])
    for k in range(len(found), count):
        merchant, _ = merchant_create_with_key(
            name=f"Seed merchant {k + 1}", slug=f"seed-merchant-{k + 1}"
        )
        found.append(merchant)
    return found


def rebuild_rollups(
    progress: Callable[[str], None] | None = None,
    *,
    bulk: bool = False,
    phases: dict[str, float] | None = None,
) -> bool:
    """Analytics' rollups from the event log, when analytics has them.

    `bulk` (PostgreSQL; what a bulk seed uses) drops the rollup tables'
    secondary and unique indexes and foreign keys around the rebuild, in its
    transaction, and recreates them after: every cell is inserted once by
    the rebuild's INSERT … SELECT, so maintaining five B-trees and queueing
    a deferred foreign-key check per cell is most of its cost. The tables
    are locked meanwhile (readers wait instead of seeing the old rollups)."""
    try:
        from analytics import services as analytics_services
    except ImportError:
        return False
    rebuild = getattr(analytics_services, "rollups_rebuild", None)
    if rebuild is None:
        return False
    phases = phases if phases is not None else {}
    if not (bulk and connection.vendor == "postgresql"):
        with _timed(phases, "rollups"):
            rebuild(progress=progress)
        return True
    tables = [cube.model for cube in analytics_services.TABLES]
    with _timed(phases, "rollups"), transaction.atomic():
        dropped = _drop_secondary(tables, unique=True)
        rebuild(progress=progress)
        _restore_secondary(dropped, phases, label="rollup ")
    with _timed(phases, "rollup analyze"):
        _analyze(tables)
    return True


def iter_shapes() -> Iterator[str]:
    return (s[0] for s in SHAPES)
