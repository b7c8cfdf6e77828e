"""Reads of the payments domain, always scoped to one merchant (DESIGN rule 8).

Another merchant's object is "no such object": `get_*` raise the 404
`resource_missing`, whatever exists under that id elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from django.db import NotSupportedError, connections, transaction
from django.db.models import F, Lookup, Q, QuerySet, Sum

from payments import cards, ids, money
from payments.errors import missing
from payments.models import (
    Charge,
    Customer,
    Dispute,
    Event,
    LedgerEntry,
    LedgerTransaction,
    PaymentIntent,
    PaymentMethod,
    Refund,
    ThreeDSChallenge,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from payments.models.ledger import Account, Side
from payments.processing import BUILTIN_PROCESSOR
from payments.state_machine import Status

_RELATED = {
    PaymentIntent: ("customer", "payment_method", "latest_charge"),
    Charge: ("payment_method", "customer", "balance_transaction"),
    Refund: ("balance_transaction",),
    Dispute: (),
    PaymentMethod: ("customer",),
    Customer: (),
    Event: (),
    LedgerTransaction: (),
}
_KIND = {
    PaymentIntent: "payment_intent",
    Charge: "charge",
    Refund: "refund",
    Dispute: "dispute",
    PaymentMethod: "PaymentMethod",
    Customer: "customer",
    Event: "event",
    LedgerTransaction: "balance_transaction",
}


def scoped(model: Any, merchant_id: int) -> QuerySet[Any]:
    query = model.objects.filter(merchant_id=merchant_id)
    related = _RELATED.get(model)
    return query.select_related(*related) if related else query


def get_object(model: Any, *, merchant_id: int, object_id: str) -> Any:
    found = scoped(model, merchant_id).filter(pk=object_id).first()
    if found is None:
        raise missing(_KIND[model], object_id)
    return found


def payment_intents(merchant_id: int, *, customer: str | None = None) -> QuerySet[PaymentIntent]:
    query = scoped(PaymentIntent, merchant_id)
    return query.filter(customer_id=customer) if customer else query


def refunds(
    merchant_id: int, *, payment_intent: str | None = None, charge: str | None = None
) -> QuerySet[Refund]:
    query = scoped(Refund, merchant_id)
    if payment_intent:
        query = query.filter(payment_intent_id=payment_intent)
    if charge:
        query = query.filter(charge_id=charge)
    return query


def payment_methods(
    merchant_id: int, *, customer: str, type: str | None = None
) -> QuerySet[PaymentMethod]:
    query = scoped(PaymentMethod, merchant_id).filter(customer_id=customer)
    return query.filter(type=type) if type else query


def customers(merchant_id: int, *, email: str | None = None) -> QuerySet[Customer]:
    query = scoped(Customer, merchant_id).filter(deleted_at__isnull=True)
    return query.filter(email__iexact=email) if email else query


def events(merchant_id: int, *, types: list[str] | None = None) -> QuerySet[Event]:
    query = scoped(Event, merchant_id)
    if types:
        condition = Q()
        for event_type in types:
            condition |= (
                Q(type__startswith=event_type[:-1])
                if event_type.endswith("*")
                else Q(type=event_type)
            )
        query = query.filter(condition)
    return query


def balance_transactions(
    merchant_id: int, *, type: str | None = None, source: str | None = None
) -> QuerySet[LedgerTransaction]:
    query = scoped(LedgerTransaction, merchant_id)
    if type:
        query = query.filter(type=type)
    if source:
        query = query.filter(source=source)
    return query


def merchant_balance(merchant_id: int) -> dict[str, int]:
    """The merchant's balance per currency: the credit balance of its
    `merchant_balance` ledger account (DESIGN rule 4)."""
    totals: dict[str, int] = defaultdict(int)
    rows = (
        LedgerEntry.objects.filter(merchant_id=merchant_id, account=Account.MERCHANT_BALANCE)
        .values("currency", "side")
        .annotate(total=Sum("amount"))
    )
    for row in rows:
        sign = 1 if row["side"] == Side.CREDIT else -1
        totals[row["currency"]] += sign * int(row["total"] or 0)
    return dict(totals)


def webhook_endpoints(merchant_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(merchant_id=merchant_id, deleted_at__isnull=True)


# --- Dashboard reads -------------------------------------------------------------
#
# The staff dashboard sees every merchant (`scope=None`) and a merchant user
# only theirs (`scope=<merchant id>`): the scope comes from
# `accounts.roles.merchant_scope`, and another merchant's object is None here,
# a 404 in the view.


@dataclass(frozen=True)
class PaymentSearch:
    """The explorer's filters; amounts are decimal strings in major units."""

    scope: int | None = None
    merchant_id: int | None = None
    status: str = ""
    processor: str = ""
    currency: str = ""
    brand: str = ""
    amount_min: str = ""
    amount_max: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str = ""
    sort: str = "created"
    descending: bool = True


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    # Opaque keyset cursors; None when there is nothing that way.
    next_cursor: str | None
    prev_cursor: str | None


PAYMENT_SORTS = ("created", "amount")
_LAST4 = re.compile(r"\d{4}")
_METADATA_PAIR = re.compile(r"(?P<key>[A-Za-z0-9_.\-]{1,40})[:=](?P<value>.+)")


def _amount_groups(search: PaymentSearch) -> list[Q]:
    """The amount range, one condition per currency exponent: amounts are
    typed in major units and each currency has its own exponent (JPY 0, USD
    2, KWD 3 …), so the bounds are converted once per exponent. With a
    currency, one group, its range alone; without, each group names its
    currencies. Empty without a range."""
    if not (search.amount_min or search.amount_max):
        return []
    if search.currency:
        groups = {money.exponent(search.currency): [search.currency]}
    else:
        groups = defaultdict(list)
        for code, places in money.CURRENCY_EXPONENTS.items():
            groups[places].append(code)
    conditions = []
    for codes in groups.values():
        part = Q(currency__in=codes) if not search.currency else Q()
        if search.amount_min:
            part &= Q(amount__gte=money.to_minor(search.amount_min, codes[0]))
        if search.amount_max:
            part &= Q(amount__lte=money.to_minor(search.amount_max, codes[0]))
        conditions.append(part)
    return conditions


def _amount_condition(search: PaymentSearch) -> Q:
    condition = Q()
    for part in _amount_groups(search):
        condition |= part
    return condition


class MetadataMatch(Lookup):  # type: ignore[type-arg]
    """`metadata` holds `value` as the value of its top-level `key`, or of any
    top-level key when `key` is None (exactly, case-sensitively: metadata
    values are strings). The right-hand side is `(key, value)`.

    PostgreSQL: `metadata @> '{"key": "value"}'` or `metadata @@ '$.* ==
    "value"'`, both answered by the partial GIN index `pi_metadata`
    (`jsonb_ops`: the operator class that supports `.*`; migration 0006),
    whose predicate `metadata <> '{}'` is repeated so the planner can use it.
    SQLite: a `json_each` probe per row."""

    lookup_name = "metadata_match"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        raise NotSupportedError("metadata search: PostgreSQL or SQLite only")

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        key, value = self.rhs
        if key is None:
            match, arg = f"{lhs} @@ %s::jsonpath", f"$.* == {json.dumps(value)}"
        else:
            match, arg = f"{lhs} @> %s::jsonb", json.dumps({key: value})
        return f"{match} AND {lhs} <> '{{}}'::jsonb", [*params, arg, *params]

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        key, value = self.rhs
        # `lhs` is the compiled column; the values are parameters.
        probe = f"SELECT 1 FROM json_each({lhs}) AS kv"  # noqa: S608
        sql = f"EXISTS ({probe} WHERE kv.type = 'text' AND kv.value = %s"
        if key is None:
            return sql + ")", [*params, value]
        return sql + " AND kv.key = %s)", [*params, value, key]


def _search(
    query: QuerySet[PaymentIntent], text: str, merchant_ids: list[int]
) -> QuerySet[PaymentIntent]:
    """Free search, dispatched on the shape of what was typed: an object id,
    an email, a card's last four digits, `key:value` of metadata, or any
    metadata value. Each kind is answered by an index (docs/analytics.md,
    "Payments explorer: free search"), so it stays fast at 10 M payments;
    `merchant_ids` is the scope and merchant filter, when there is one."""
    text = text.strip()
    if not text:
        return query
    if text.startswith("pi_"):
        return query.filter(pk=text)
    if text.startswith("ch_"):
        return query.filter(latest_charge_id=text)
    if text.startswith("cus_"):
        return query.filter(customer_id=text)
    if "@" in text:
        # The customers with that email first (index `customer_email_upper`),
        # then their payments by `customer_id` OR-ed with the intent's own
        # receipt email (partial index `pi_receipt_email`): a bitmap OR of two index
        # scans. A join inside the OR could use neither.
        owners = Customer.objects.filter(email__iexact=text)
        if merchant_ids:
            owners = owners.filter(merchant_id__in=merchant_ids)
        owner_ids = list(owners.values_list("pk", flat=True))
        # `<> ''` repeats the partial index's predicate, so it can be used.
        receipt = Q(receipt_email__iexact=text) & ~Q(receipt_email="")
        return query.filter(Q(customer_id__in=owner_ids) | receipt if owner_ids else receipt)
    if _LAST4.fullmatch(text):
        # The intent's own `card_last4` (index `pi_card_last4`: the last4's
        # (created, id) range), not its payment method's: a declined
        # payment has none, and is still found by the card it tried.
        return query.filter(card_last4=text)
    pair = _METADATA_PAIR.fullmatch(text)
    if pair:
        return query.filter(MetadataMatch(F("metadata"), (pair["key"], pair["value"])))
    return query.filter(MetadataMatch(F("metadata"), (None, text)))


def _payment_query(search: PaymentSearch, *, amount: bool = True) -> QuerySet[PaymentIntent]:
    """Every filter of `search` (the amount range unless `amount` is False)."""
    query = PaymentIntent.objects.select_related("merchant", "payment_method", "customer")
    if search.scope is not None:
        query = query.filter(merchant_id=search.scope)
    if search.merchant_id is not None:
        query = query.filter(merchant_id=search.merchant_id)
    if search.status:
        query = query.filter(status=search.status)
    if search.processor:
        query = query.filter(processor=search.processor)
    if search.currency:
        query = query.filter(currency=search.currency)
    if search.brand:
        # The card last tried, like the last4 search (`pi_card_brand`).
        query = query.filter(card_brand=search.brand)
    if search.created_from:
        query = query.filter(created__gte=search.created_from)
    if search.created_to:
        query = query.filter(created__lt=search.created_to)
    if amount:
        query = query.filter(_amount_condition(search))
    merchant_ids = [m for m in (search.scope, search.merchant_id) if m is not None]
    return _search(query, search.search, merchant_ids)


def _encode_cursor(key: Any, pk: str) -> str:
    raw = json.dumps([key.isoformat() if isinstance(key, datetime) else key, pk])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, str] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, pk = json.loads(raw)
        if sort == "created":
            key = datetime.fromisoformat(key)
        elif not isinstance(key, int):
            return None
        return key, str(pk)
    except (ValueError, TypeError, binascii.Error):
        return None


def _serial(query: QuerySet[PaymentIntent]) -> list[PaymentIntent]:
    """The rows of a page query, without parallel workers on PostgreSQL.

    A page is a walk of an index that stops after `limit` matches, but the
    planner costs the walk as if it read the whole index (its cost before the
    LIMIT is that of millions of rows) and so plans a Gather Merge; starting
    the workers then dominates: the brand filter at 10 M rows read ~1,500
    index entries in 4 ms of work and took 45 ms, 35 of them launching two
    workers (docs/benchmarks.md, 10 M). `SET LOCAL` holds for this
    transaction only."""
    if connections[query.db].vendor != "postgresql":
        return list(query)
    with transaction.atomic(using=query.db), connections[query.db].cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        return list(query)


def _merged(
    ordered: QuerySet[PaymentIntent],
    groups: list[Q],
    n: int,
    *,
    descending: bool,
    fetch: Callable[[QuerySet[PaymentIntent]], list[PaymentIntent]],
) -> list[PaymentIntent]:
    """The first `n` rows of `ordered` (by amount, id) that match any of
    `groups`: the first `n` of each group — each a range of `pi_amount`
    under the currencies' filter, stopping after `n` — merged. The groups'
    currencies are disjoint, so no row comes twice and the merge is the
    page the OR would give.

    A query per exponent group (three) and a merge here rather than one
    UNION ALL of LIMIT-ed branches: the same index work, and SQLite (the
    embedded mode) cannot order and limit the branches of a compound
    SELECT, so one code path serves both; the two extra round trips cost
    well under a millisecond."""
    parts = [fetch(ordered.filter(group)[:n]) for group in groups]
    merged = heapq.merge(*parts, key=lambda p: (p.amount, p.pk), reverse=descending)
    return list(itertools.islice(merged, n))


def payment_search(
    search: PaymentSearch, *, after: str = "", before: str = "", limit: int = 50
) -> Page:
    """One page of payments in (sort key, id) order, by keyset: the page after
    (or before) a cursor costs an index range scan of `limit` rows wherever
    it is — no OFFSET, and no COUNT(*) over everything.

    The condition is written `key <= k AND (key < k OR id < i)` rather than
    as an OR alone, so PostgreSQL can use the leading column of a
    (merchant, created, id) index as a range bound.
    """
    sort = search.sort if search.sort in PAYMENT_SORTS else "created"
    # Sorted by amount with a range but no currency, the range is one
    # condition per exponent; OR-ed, they are no bound of `pi_amount` and
    # the walk filters every payment beyond the range's end (9.3 s at 10 M).
    # Each is read as its own range instead, and the pages merged.
    groups = _amount_groups(search) if sort == "amount" else []
    split = len(groups) > 1
    query = _payment_query(search, amount=not split)
    backwards = bool(before) and not after
    cursor = _decode_cursor(after or before, sort) if (after or before) else None
    # Reading "before" a cursor is reading the other way and flipping.
    descending = search.descending != backwards
    if cursor is not None:
        key, pk = cursor
        if descending:
            query = query.filter(**{f"{sort}__lte": key}).filter(
                Q(**{f"{sort}__lt": key}) | Q(pk__lt=pk)
            )
        else:
            query = query.filter(**{f"{sort}__gte": key}).filter(
                Q(**{f"{sort}__gt": key}) | Q(pk__gt=pk)
            )
    sign = "-" if descending else ""
    ordered = query.order_by(f"{sign}{sort}", f"{sign}pk")
    # The brand filter and the searches are the pages seen planned parallel
    # at 10 M; the others keep their one statement (the transaction costs
    # three more round trips, 3-5 ms on a loaded box).
    fetch = _serial if search.brand or search.search.strip() else list
    if split:
        rows = _merged(ordered, groups, limit + 1, descending=descending, fetch=fetch)
    else:
        rows = fetch(ordered[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    first = _encode_cursor(getattr(rows[0], sort), rows[0].pk) if rows else None
    last = _encode_cursor(getattr(rows[-1], sort), rows[-1].pk) if rows else None
    if backwards:
        return Page(rows=rows, next_cursor=last, prev_cursor=first if more else None)
    return Page(
        rows=rows, next_cursor=last if more else None, prev_cursor=first if cursor else None
    )


def payment_filter_choices(scope: int | None) -> dict[str, list[str]]:
    """Values the explorer's selects offer, from small tables only."""
    # Brands come from the card table, not a DISTINCT over payment methods
    # (one per payment: a full scan at 10 M rows on every page view).
    brands = sorted(get_args(cards.Brand))
    return {
        "statuses": [s.value for s in Status],
        "currencies": sorted(money.CURRENCY_EXPONENTS),
        "brands": brands,
        "processors": _processor_names(),
    }


def _processor_names() -> list[str]:
    # The processors table, once it exists, names them; until then the one
    # built-in processor is all there is.
    from payments import models

    table = getattr(models, "Processor", None)
    if table is None:
        return [BUILTIN_PROCESSOR]
    names = sorted(str(n) for n in table.objects.values_list("name", flat=True))
    return names or [BUILTIN_PROCESSOR]


def payment_for_scope(scope: int | None, payment_id: str) -> PaymentIntent | None:
    query = PaymentIntent.objects.select_related(
        "merchant", "customer", "payment_method", "latest_charge"
    ).filter(pk=payment_id)
    if scope is not None:
        query = query.filter(merchant_id=scope)
    return query.first()


@dataclass(frozen=True)
class PaymentDetail:
    intent: PaymentIntent
    events: list[Event]
    charges: list[Charge]
    refunds: list[Refund]
    disputes: list[Dispute]
    challenges: list[ThreeDSChallenge]
    ledger: list[LedgerTransaction]
    deliveries: list[WebhookDelivery]

    @property
    def open_dispute(self) -> Dispute | None:
        return next((d for d in self.disputes if d.is_open), None)

    @property
    def refundable(self) -> int:
        return self.intent.amount_received - self.intent.amount_refunded


def payment_detail(intent: PaymentIntent) -> PaymentDetail:
    """Everything the payment page shows, a handful of indexed queries."""
    return PaymentDetail(
        intent=intent,
        events=list(Event.objects.filter(payment_intent=intent).order_by("sequence", "id")),
        charges=list(
            Charge.objects.filter(payment_intent=intent)
            .select_related("payment_method")
            .order_by("created", "id")
        ),
        refunds=list(Refund.objects.filter(payment_intent=intent).order_by("created", "id")),
        disputes=list(Dispute.objects.filter(payment_intent=intent).order_by("created", "id")),
        challenges=list(ThreeDSChallenge.objects.filter(payment_intent=intent).order_by("created")),
        ledger=list(
            LedgerTransaction.objects.filter(payment_intent=intent)
            .prefetch_related("entries")
            .order_by("created", "id")
        ),
        deliveries=list(
            WebhookDelivery.objects.filter(event__payment_intent=intent)
            .select_related("endpoint", "event")
            .order_by("id")
        ),
    )


def recent_events(
    scope: int | None,
    *,
    merchant_id: int | None = None,
    types: list[str] | None = None,
    limit: int = 50,
) -> list[Event]:
    """The newest events, for the live feed's first paint."""
    query = Event.objects.select_related("merchant")
    if scope is not None:
        query = query.filter(merchant_id=scope)
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    if types:
        query = query.filter(
            Q(type__startswith=types[0][:-1]) if types[0].endswith("*") else Q(type=types[0])
        )
    events = list(query.order_by("-id")[:limit])
    # Ids order events by the millisecond only: one transaction's events
    # often share it, and their random parts would mix a payment's
    # `created` and `succeeded` up. Within a millisecond, by sequence.
    events.sort(key=lambda e: (ids.created_part(e.id), e.sequence or 0), reverse=True)
    return events


def webhook_endpoints_for_scope(
    scope: int | None, *, merchant_id: int | None = None
) -> QuerySet[WebhookEndpoint]:
    query = WebhookEndpoint.objects.filter(deleted_at__isnull=True).select_related("merchant")
    if scope is not None:
        query = query.filter(merchant_id=scope)
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    return query.order_by("merchant__name", "-id")


def webhook_deliveries(
    scope: int | None,
    *,
    merchant_id: int | None = None,
    endpoint_id: str = "",
    status: str = "",
    after: int | None = None,
    limit: int = 50,
) -> Page:
    """Deliveries newest first, keyset on the id."""
    query = WebhookDelivery.objects.select_related("endpoint", "event")
    if scope is not None:
        query = query.filter(merchant_id=scope)
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    if endpoint_id:
        query = query.filter(endpoint_id=endpoint_id)
    if status:
        query = query.filter(status=status)
    if after is not None:
        query = query.filter(pk__lt=after)
    rows = list(query.order_by("-pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        rows=rows,
        next_cursor=str(rows[-1].pk) if more and rows else None,
        prev_cursor=None,
    )


def webhook_delivery_for_scope(scope: int | None, delivery_id: int) -> WebhookDelivery | None:
    query = WebhookDelivery.objects.select_related("endpoint__merchant", "event").filter(
        pk=delivery_id
    )
    if scope is not None:
        query = query.filter(merchant_id=scope)
    return query.first()


def webhook_attempts(delivery: WebhookDelivery) -> list[WebhookAttempt]:
    return list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number", "id"))
