"""The two append-only writes every money movement makes: events and ledger.

`append_event` adds an Event and its OutboxMessage in the caller's
transaction (DESIGN rule 7: what leaves the database is read from committed
events). `post_ledger` adds a balanced LedgerTransaction (DESIGN rule 4):
it refuses entries whose debits and credits differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payments import context, ids
from payments.models import Event, LedgerEntry, LedgerTransaction, OutboxMessage, PaymentIntent
from payments.models.ledger import Account, Side
from payments.services import batch, outbox


class LedgerImbalance(Exception):
    pass


@dataclass(frozen=True)
class NewEvent:
    """One event to append: its type, snapshot and, for the first event of a
    transition, the status change and the delta of the projected amounts."""

    type: str
    data: dict[str, Any]
    from_status: str = ""
    to_status: str = ""
    delta: dict[str, int] | None = None


def append_events(
    *,
    merchant_id: int,
    events: list[NewEvent],
    now: datetime,
    intent: PaymentIntent | None = None,
) -> list[Event]:
    """Append events (and their outbox rows) in two statements, whatever
    their number. With `intent` (locked by the caller), they take the
    payment's next sequence numbers; the caller saves the intent."""
    request = context.current()
    rows = []
    for new in events:
        sequence = None
        if intent is not None:
            intent.event_sequence += 1
            sequence = intent.event_sequence
        rows.append(
            Event(
                id=ids.new_id("evt", now),
                merchant_id=merchant_id,
                payment_intent=intent,
                sequence=sequence,
                type=new.type,
                from_status=new.from_status,
                to_status=new.to_status,
                data=new.data,
                delta=new.delta or {},
                request_id=request.request_id,
                idempotency_key=request.idempotency_key,
                created=now,
            )
        )
    # Only inserts: the log stays append-only (Event.save and the queryset
    # refuse updates and deletes). Queued with the rest of the transaction's
    # writes inside `batch.batched()`.
    batch.insert(rows)
    batch.insert(
        [OutboxMessage(event=event, merchant_id=merchant_id, created=now) for event in rows]
    )
    outbox.nudge_on_commit()
    return rows


def append_event(
    *,
    merchant_id: int,
    type: str,
    data: dict[str, Any],
    now: datetime,
    intent: PaymentIntent | None = None,
    from_status: str = "",
    to_status: str = "",
    delta: dict[str, int] | None = None,
) -> Event:
    """Append one event (and its outbox row); see `append_events`."""
    new = NewEvent(type=type, data=data, from_status=from_status, to_status=to_status, delta=delta)
    return append_events(merchant_id=merchant_id, events=[new], now=now, intent=intent)[0]


@dataclass(frozen=True)
class Entry:
    account: Account
    side: Side
    amount: int


def post_ledger(
    *,
    merchant_id: int,
    type: LedgerTransaction.Type,
    currency: str,
    source: str,
    entries: list[Entry],
    now: datetime,
    payment_intent_id: str | None = None,
    description: str = "",
) -> LedgerTransaction:
    """Post one balanced transaction. amount/fee/net describe its effect on
    the merchant balance, as Stripe's balance transaction does."""
    entries = [e for e in entries if e.amount != 0]
    debits = sum(e.amount for e in entries if e.side == Side.DEBIT)
    credits = sum(e.amount for e in entries if e.side == Side.CREDIT)
    if debits != credits or not entries or any(e.amount < 0 for e in entries):
        raise LedgerImbalance(f"{type} {source}: debits {debits} != credits {credits}")
    net = sum(
        e.amount if e.side == Side.CREDIT else -e.amount
        for e in entries
        if e.account == Account.MERCHANT_BALANCE
    )
    fee = sum(
        e.amount if e.side == Side.CREDIT else -e.amount
        for e in entries
        if e.account == Account.FEE_REVENUE
    )
    txn = LedgerTransaction(
        id=ids.new_id("txn", now),
        merchant_id=merchant_id,
        type=type,
        currency=currency,
        amount=net + fee,
        fee=fee,
        net=net,
        source=source,
        payment_intent_id=payment_intent_id,
        description=description,
        created=now,
    )
    batch.insert([txn])
    batch.insert(
        [
            LedgerEntry(
                transaction=txn,
                merchant_id=merchant_id,
                account=e.account,
                side=e.side,
                amount=e.amount,
                currency=currency,
            )
            for e in entries
        ]
    )
    return txn


D, C = Side.DEBIT, Side.CREDIT
CLEARING, BALANCE, FEES = Account.PROCESSOR_CLEARING, Account.MERCHANT_BALANCE, Account.FEE_REVENUE


def charge_entries(amount: int, fee: int) -> list[Entry]:
    """Captured funds: the acquirer owes them; the merchant is owed them less the fee."""
    return [Entry(CLEARING, D, amount), Entry(BALANCE, C, amount - fee), Entry(FEES, C, fee)]


def refund_entries(amount: int) -> list[Entry]:
    return [Entry(BALANCE, D, amount), Entry(CLEARING, C, amount)]


def refund_failure_entries(amount: int) -> list[Entry]:
    return [Entry(CLEARING, D, amount), Entry(BALANCE, C, amount)]


def dispute_entries(amount: int, fee: int) -> list[Entry]:
    return [Entry(BALANCE, D, amount + fee), Entry(CLEARING, C, amount), Entry(FEES, C, fee)]


def dispute_reversal_entries(amount: int) -> list[Entry]:
    return [Entry(CLEARING, D, amount), Entry(BALANCE, C, amount)]
