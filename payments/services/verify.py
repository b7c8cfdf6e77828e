"""`manage.py verify`: the invariants of DESIGN's domain rules, checked
against what is stored.

- every payment equals its rebuild from its event log (status and amounts),
  and its event sequence is 1..n with no gap;
- every ledger transaction balances per currency, and its amount/fee/net
  agree with its entries;
- every merchant balance equals what its payments say it should be;
- no idempotency key produced two objects;
- every payment's card columns agree with the payment methods it points at;
- no stored text holds a full card number.

Later concerns (webhook delivery, rollups) add checks with `register`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, CharField, Count, F, Q, Sum, TextField, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from payments import cards
from payments.models import (
    Customer,
    Event,
    IdempotencyKey,
    LedgerEntry,
    LedgerTransaction,
    PaymentIntent,
    PaymentMethod,
)
from payments.models.ledger import Account, Side
from payments.services.transition import PROJECTED_AMOUNTS

CHUNK = 2000


@dataclass
class Report:
    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    violations: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.violations.append(message)

    @property
    def ok(self) -> bool:
        return not self.violations


Check = Callable[[Report], None]
CHECKS: list[tuple[str, Check]] = []


def register(name: str) -> Callable[[Check], Check]:
    def decorator(check: Check) -> Check:
        CHECKS.append((name, check))
        return check

    return decorator


def fold(events: list[Event]) -> dict[str, Any]:
    """Recompute a payment's status and amounts from its events."""
    state: dict[str, Any] = {"status": None, **{name: 0 for name in PROJECTED_AMOUNTS}}
    for event in events:
        if event.to_status:
            state["status"] = event.to_status
        for name, change in (event.delta or {}).items():
            state[name] = state.get(name, 0) + int(change)
    return state


def rebuild_differences(intent: PaymentIntent, events: list[Event]) -> list[str]:
    """What differs between a payment and its rebuild; empty when equal."""
    problems = []
    sequences = [e.sequence for e in events]
    if sequences != list(range(1, len(events) + 1)):
        problems.append(f"event sequence is {sequences[:10]}…, not 1..{len(events)}")
    if len(events) != intent.event_sequence:
        problems.append(f"{len(events)} events but event_sequence={intent.event_sequence}")
    rebuilt = fold(events)
    for name in ("status", *PROJECTED_AMOUNTS):
        if rebuilt[name] != getattr(intent, name):
            problems.append(f"{name}: stored {getattr(intent, name)!r}, rebuilt {rebuilt[name]!r}")
    return problems


def _chunks(query: Any) -> Iterator[list[Any]]:
    last = ""
    while True:
        batch = list(query.filter(pk__gt=last).order_by("pk")[:CHUNK])
        if not batch:
            return
        yield batch
        last = batch[-1].pk


@register("payments equal their rebuild from events")
def check_rebuild(report: Report) -> None:
    for batch in _chunks(PaymentIntent.objects.all()):
        by_intent: dict[str, list[Event]] = defaultdict(list)
        for event in (
            Event.objects.filter(payment_intent_id__in=[p.pk for p in batch])
            .order_by("payment_intent_id", "sequence")
            .only("payment_intent_id", "sequence", "to_status", "delta")
        ):
            by_intent[event.payment_intent_id].append(event)  # type: ignore[index]
        for intent in batch:
            report.checked["payments"] += 1
            for problem in rebuild_differences(intent, by_intent.get(intent.pk, [])):
                report.fail(f"payment {intent.pk}: {problem}")


def expected_card(prefix: str) -> Case:
    """The card the write path keeps on an intent (`transition.set_card`),
    from what it points at: its payment method; without one (cleared by a
    failed confirmation) the method of the failed attempt in
    `last_payment_error`; without that, its latest charge's method. `prefix`
    is `brand` or `last4`; blank for a non-card method or none."""
    blank = Value("")
    return Case(
        When(
            payment_method__isnull=False,
            then=Case(
                When(payment_method__type="card", then=F(f"payment_method__{prefix}")),
                default=blank,
                output_field=CharField(),
            ),
        ),
        When(
            last_payment_error__payment_method__id__isnull=False,
            then=Case(
                When(
                    last_payment_error__payment_method__type="card",
                    then=Coalesce(
                        KT(f"last_payment_error__payment_method__card__{prefix}"),
                        blank,
                        output_field=CharField(),
                    ),
                ),
                default=blank,
                output_field=CharField(),
            ),
        ),
        When(
            latest_charge__payment_method__type="card",
            then=F(f"latest_charge__payment_method__{prefix}"),
        ),
        default=blank,
        output_field=CharField(),
    )


@register("payments' card columns match their payment methods")
def check_cards(report: Report) -> None:
    """One set-based query (joins, no per-row work in Python): the
    explorer's brand filter and last4 search read `card_brand` /
    `card_last4`, so a copy that drifted from the payment methods would
    hide a payment from the operator looking for its card."""
    drifted = (
        PaymentIntent.objects.annotate(
            expected_brand=expected_card("brand"), expected_last4=expected_card("last4")
        )
        .exclude(card_brand=F("expected_brand"), card_last4=F("expected_last4"))
        .order_by()
        .values_list("pk", "card_brand", "card_last4", "expected_brand", "expected_last4")
    )
    for pk, brand, last4, want_brand, want_last4 in drifted.iterator(chunk_size=CHUNK):
        report.fail(
            f"payment {pk}: card {brand or '-'} {last4 or '-'}, "
            f"its payment methods say {want_brand or '-'} {want_last4 or '-'}"
        )


@register("ledger transactions balance")
def check_ledger(report: Report) -> None:
    sums = (
        LedgerEntry.objects.values("transaction_id", "currency")
        .annotate(
            debits=Sum("amount", filter=Q(side=Side.DEBIT)),
            credits=Sum("amount", filter=Q(side=Side.CREDIT)),
            balance_net=Sum("amount", filter=Q(account=Account.MERCHANT_BALANCE, side=Side.CREDIT)),
            balance_out=Sum("amount", filter=Q(account=Account.MERCHANT_BALANCE, side=Side.DEBIT)),
        )
        .order_by()
    )
    nets = {}
    for row in sums.iterator(chunk_size=CHUNK):
        report.checked["ledger transactions"] += 1
        if (row["debits"] or 0) != (row["credits"] or 0):
            report.fail(
                f"ledger {row['transaction_id']} ({row['currency']}): debits {row['debits']} != credits {row['credits']}"
            )
        nets[row["transaction_id"]] = (row["balance_net"] or 0) - (row["balance_out"] or 0)
    for txn_id, net in LedgerTransaction.objects.values_list("id", "net").iterator(
        chunk_size=CHUNK
    ):
        if txn_id not in nets:
            report.fail(f"ledger {txn_id}: has no entries")
        elif nets[txn_id] != net:
            report.fail(
                f"ledger {txn_id}: net {net} but its entries move the balance by {nets[txn_id]}"
            )


@register("merchant balances match payments")
def check_balances(report: Report) -> None:
    expected: dict[tuple[int, str], int] = defaultdict(int)
    for row in (
        PaymentIntent.objects.values("merchant_id", "currency")
        .annotate(
            received=Sum("amount_received"),
            refunded=Sum("amount_refunded"),
            disputed=Sum("amount_disputed"),
        )
        .order_by()
    ):
        expected[(row["merchant_id"], row["currency"])] += (
            (row["received"] or 0) - (row["refunded"] or 0) - (row["disputed"] or 0)
        )
    for fees in (
        LedgerTransaction.objects.values("merchant_id", "currency")
        .annotate(fees=Sum("fee"))
        .order_by()
    ):
        expected[(fees["merchant_id"], fees["currency"])] -= fees["fees"] or 0
    # A lost dispute keeps its amount withdrawn although the payment's
    # amount_disputed still counts it: nothing to adjust. A won one is
    # reinstated and removed from amount_disputed by the same transition.
    actual: dict[tuple[int, str], int] = defaultdict(int)
    for entry in (
        LedgerEntry.objects.filter(account=Account.MERCHANT_BALANCE)
        .values("merchant_id", "currency", "side")
        .annotate(total=Sum("amount"))
        .order_by()
    ):
        sign = 1 if entry["side"] == Side.CREDIT else -1
        actual[(entry["merchant_id"], entry["currency"])] += sign * (entry["total"] or 0)
    for key in set(expected) | set(actual):
        report.checked["balances"] += 1
        if expected.get(key, 0) != actual.get(key, 0):
            report.fail(
                f"merchant {key[0]} {key[1]}: ledger balance {actual.get(key, 0)} != {expected.get(key, 0)} from payments"
            )


@register("idempotency keys are unique and produced one object")
def check_idempotency(report: Report) -> None:
    duplicates = (
        IdempotencyKey.objects.values("merchant_id", "key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .order_by()
    )
    for row in duplicates:
        report.fail(
            f"idempotency key {row['key']!r} of merchant {row['merchant_id']} stored {row['n']} times"
        )
    created_twice = (
        Event.objects.filter(type="payment_intent.created")
        .exclude(idempotency_key="")
        .values("merchant_id", "idempotency_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .order_by()
    )
    for twice in created_twice:
        report.fail(
            f"idempotency key {twice['idempotency_key']!r} of merchant {twice['merchant_id']} created {twice['n']} payments"
        )
    report.checked["idempotency keys"] = IdempotencyKey.objects.count()


_LONG_DIGITS = re.compile(r"(?<![0-9A-Za-z_])(\d{13,19})(?![0-9A-Za-z_])")
_SKIP_KEYS = frozenset({"fingerprint", "id", "client_secret"})


def _card_numbers(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in _SKIP_KEYS:
                yield from _card_numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _card_numbers(item)
    elif isinstance(value, str | int):
        for match in _LONG_DIGITS.findall(str(value)):
            if cards.luhn_valid(match) and cards.brand_of(match):
                yield match


SCANNED: list[tuple[Any, str]] = [
    (Event, "data"),
    (PaymentIntent, "metadata"),
    (PaymentIntent, "last_payment_error"),
    (PaymentMethod, "billing_details"),
    (PaymentMethod, "metadata"),
    (PaymentMethod, "details"),
    (Customer, "metadata"),
]


@register("no full card number is stored")
def check_card_numbers(report: Report) -> None:
    for model, column in SCANNED:
        # The database narrows the scan to values with a long digit run;
        # Python then checks word boundaries, Luhn and a known brand.
        suspects = (
            model.objects.annotate(_text=Cast(column, TextField()))
            .filter(_text__regex=r"[0-9]{13,19}")
            .values_list("pk", column)
        )
        for pk, value in suspects.iterator(chunk_size=CHUNK):
            report.checked["card scan suspects"] += 1
            for number in _card_numbers(value):
                report.fail(
                    f"{model.__name__} {pk}.{column} holds a card number ending {number[-4:]}"
                )
    for pk, body in (
        IdempotencyKey.objects.exclude(response_body=None)
        .values_list("pk", "response_body")
        .iterator(chunk_size=CHUNK)
    ):
        try:
            parsed = json.loads(bytes(body or b""))
        except ValueError:
            continue
        for number in _card_numbers(parsed):
            report.fail(f"IdempotencyKey {pk} response holds a card number ending {number[-4:]}")


def run(progress: Callable[[str], None] | None = None) -> Report:
    report = Report()
    for name, check in CHECKS:
        if progress:
            progress(name)
        check(report)
    return report
