"""Payments explorer benchmark (issue 7): server time of the first page and of
the 1,000th page (50 rows a page), for staff and for one merchant.

Run against a database that already holds seeded payments
(`manage.py seed --payments N`), in-process through Django's test client as
a logged-in operator, so what is measured is the server's time for the
request (query, template), not the network:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/paylab_ana2 PAYLAB_DEBUG=true \
        .venv/bin/python bench/explorer_bench.py --runs 15

The 1,000th page is requested with the keyset cursor that page 999 hands
out, found by reading the (created, id) key of row 49,950 once before the
measurement; the request itself is what a user clicking "next" sends.

Then each filter and each kind of free search (docs/analytics.md, "Payments
explorer: free search"), first page and, where the matches reach that far,
the 1,000th; the search values are taken from the database (a customer's
email with payments, a receipt email, a common, a middling and a rare last4,
a metadata order id and channel). `--explain` prints EXPLAIN ANALYZE of each
request's page query.

`--grow-to N` (PostgreSQL) first brings the tables the explorer reads to N
payments by copying the seeded ones in SQL — see `grow` — for a 10 M figure
on a disk that cannot hold 10 M fully seeded payments (≈ 11 KB each with
their events, ledger and outbox rows):

    DATABASE_URL=…/paylab_h4_10m PAYLAB_DEBUG=true \
        .venv/bin/python bench/explorer_bench.py --grow-to 10000000 --runs 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PAYLAB_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.db.models import Count, Model  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts import services  # noqa: E402
from accounts.models import Merchant, User  # noqa: E402
from payments import selectors  # noqa: E402
from payments.dashboard.forms import PaymentFilterForm  # noqa: E402
from payments.models import Customer, PaymentIntent, PaymentMethod  # noqa: E402

PAGE = 50


def _copy(model: type[Model], copies: int, overrides: dict[str, str]) -> int:
    """`copies` copies of every row of `model`'s table in one INSERT … SELECT
    (which does not see its own rows); `g` is the copy's number."""
    table = model._meta.db_table
    columns = [field.column for field in model._meta.concrete_fields]
    names = ", ".join(f'"{c}"' for c in columns)
    select = ", ".join(overrides.get(c, f'src."{c}"') for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {select} "  # noqa: S608
            f"FROM {table} AS src, generate_series(1, %s) AS g",
            [copies],
        )
        return int(cursor.rowcount)


def _hash(salt: str) -> str:
    """A stable non-negative hash of the source row's id, the copy and a salt."""
    return f"(hashtext(src.id || g::text || '{salt}') & 2147483647)"


def grow(target: int, days: int) -> None:
    """Bring the tables the explorer reads (payment intents, their payment
    methods, customers) to `target` payments by copying the seeded ones in
    SQL. Copy k of a payment gets the id `<id>r<k>`, its own copy of the
    payment method, and its times moved by k * 9 days wrapped into the
    seeded `days`-day window (time of day kept). Copies have no latest
    charge; 30 % get one of 20,000 customers of their merchant
    (`customer<merchant>-<n>@example.test`), 10 % a receipt email
    (`buyer<n>@example.test`, 200,000 of them), half metadata
    `{"order_id": "ord_…", "channel": "web" | "app" | "pos"}` — the seed
    writes none of these. Not copied: events, charges, ledger, outbox (the
    explorer does not read them). Secondary indexes are dropped for the load
    and rebuilt after; foreign-key triggers are off for it (the copies are
    consistent by construction); then VACUUM ANALYZE."""
    assert connection.vendor == "postgresql", "--grow-to needs PostgreSQL"
    if Customer.objects.filter(pk="cus_bench1x1").exists():
        sys.exit("this database was grown already; grow a freshly seeded one")
    with transaction.atomic():
        _grow(target, days)
    for model in (PaymentIntent, PaymentMethod, Customer):
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    print(f"payments now: {PaymentIntent.objects.count():,}")


def _grow(target: int, days: int) -> None:
    seeded = PaymentIntent.objects.count()
    copies = max(0, (target - seeded) // seeded)
    tables = [m._meta.db_table for m in (PaymentIntent, PaymentMethod, Customer)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(created) FROM payments_paymentintent")
        (end,) = cursor.fetchone()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            [tables],
        )
        indexes = cursor.fetchall()
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        print(f"dropped {len(indexes)} secondary indexes; {seeded:,} seeded, {copies} copies")
        cursor.execute(
            "INSERT INTO payments_customer (id, merchant_id, email, name, phone, description,"
            " metadata, created, deleted_at) SELECT 'cus_bench' || m.id || 'x' || n, m.id,"
            " 'customer' || m.id || '-' || n || '@example.test', '', '', '', '{}',"
            " %s - n * interval '1 minute', NULL"
            " FROM accounts_merchant m, generate_series(1, 20000) n ON CONFLICT DO NOTHING",
            [end],
        )
    start = end - timedelta(days=days)
    window = days * 86_400

    def moved(column: str) -> str:
        return (
            f"'{start.isoformat()}'::timestamptz + mod(extract(epoch from src.{column} - "
            f"'{start.isoformat()}'::timestamptz) + 777600 * g, {window})::float8 * interval '1 second'"
        )

    def shifted(column: str) -> str:
        return f"src.{column} + ({moved('created')} - src.created)"

    began = time.monotonic()
    methods = _copy(
        PaymentMethod,
        copies,
        {"id": "src.id || 'r' || g", "created": moved("created")},
    )
    intents = _copy(
        PaymentIntent,
        copies,
        {
            "id": "src.id || 'r' || g",
            "payment_method_id": "src.payment_method_id || 'r' || g",
            "latest_charge_id": "NULL",
            "customer_id": (
                f"CASE WHEN {_hash('c')} %% 10 < 3 THEN 'cus_bench' || src.merchant_id"
                f" || 'x' || ({_hash('n')} %% 20000 + 1) END"
            ),
            "receipt_email": (
                f"CASE WHEN {_hash('r')} %% 10 = 0 THEN 'buyer' || ({_hash('e')} %% 200000)"
                " || '@example.test' ELSE '' END"
            ),
            "metadata": (
                f"CASE WHEN {_hash('m')} %% 2 = 0 THEN jsonb_build_object('order_id', "
                "'ord_' || substr(src.id, 4) || g, 'channel', "
                f"(ARRAY['web', 'app', 'pos'])[{_hash('h')} %% 3 + 1]) ELSE '{{}}' END"
            ),
            "created": moved("created"),
            "updated": shifted("updated"),
            "canceled_at": shifted("canceled_at"),
            "authorization_expires_at": shifted("authorization_expires_at"),
        },
    )
    print(
        f"copied {intents:,} payments, {methods:,} payment methods "
        f"in {time.monotonic() - began:.0f} s",
        flush=True,
    )
    with connection.cursor() as cursor:
        for name, definition in indexes:
            began = time.monotonic()
            cursor.execute(definition)
            print(f"index {name} rebuilt in {time.monotonic() - began:.0f} s", flush=True)


def cursor_at(params: dict[str, str], offset: int) -> str | None:
    """The cursor that page `offset // 50 + 1` hands out for these filters
    (read once with OFFSET, outside the measurement), or None when the
    matches do not reach that far."""
    search = PaymentFilterForm(params).search(None)
    key = search.sort
    query = selectors._payment_query(search).order_by(f"-{key}", "-pk")
    found = list(query.values_list(key, "id")[offset : offset + 1])
    return selectors._encode_cursor(*found[0]) if found else None


def statements(client: Client, url: str) -> list[tuple[str, Any]]:
    """The SQL statements (and parameters) the request runs."""
    seen: list[tuple[str, Any]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        client.get(url)
    return seen


def explain(client: Client, url: str) -> None:
    """EXPLAIN ANALYZE of the page query the request runs."""
    for sql, params in statements(client, url):
        if 'FROM "payments_paymentintent"' in sql and "LIMIT" in sql:
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                print("    " + "\n    ".join(row[0] for row in cursor.fetchall()))


def search_values() -> list[tuple[str, str]]:
    """(name, q) of each kind of free search, with values from the database."""
    newest = PaymentIntent.objects.order_by("-created", "-id").first()
    values = [("id", newest.id if newest else "pi_none")]
    owner = (
        PaymentIntent.objects.filter(customer__isnull=False)
        .values_list("customer__email", flat=True)
        .first()
    )
    if owner:
        values.append(("customer email", owner.upper()))
    receipt = PaymentIntent.objects.exclude(receipt_email="").values_list(
        "receipt_email", flat=True
    )
    if receipt.first():
        values.append(("receipt email", receipt.first() or ""))
    counts = dict(
        PaymentMethod.objects.filter(last4__in=["4242", "0002", "1976"])
        .values_list("last4")
        .annotate(n=Count("id"))
    )
    for last4 in ("4242", "0002", "1976"):
        share = counts.get(last4, 0) / max(1, PaymentMethod.objects.count())
        values.append((f"last4 ({share:.1%} of cards)", last4))
    order = (
        PaymentIntent.objects.exclude(metadata={})
        .order_by("created")
        .values_list("metadata", flat=True)
        .first()
    )
    if order and "order_id" in order:
        values += [
            ("metadata key:value, one payment", f"order_id:{order['order_id']}"),
            ("metadata key:value, 1/6 of payments", "channel:pos"),
            ("metadata value, one payment", order["order_id"]),
            ("metadata value, 1/6 of payments", "pos"),
        ]
    return values


def measure(client: Client, url: str, runs: int) -> tuple[float, float, int]:
    count = len(statements(client, url))  # and warms: templates, plans, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--grow-to", type=int, help="first copy payments up to this many")
    parser.add_argument("--days", type=int, default=90, help="the seeded window, for --grow-to")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE each page query")
    parser.add_argument(
        "--only", default="", help="only the requests whose name contains this (e.g. 'search')"
    )
    args = parser.parse_args()
    if args.grow_to:
        grow(args.grow_to, args.days)
    if args.runs < 1:
        return

    total = PaymentIntent.objects.count()
    email = "explorer-bench@paylab.test"
    user = User.objects.filter(email=email).first() or services.user_create(
        email=email, password=None, role="operator"
    )
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    merchant = Merchant.objects.order_by("id").first()
    offset = (args.page - 1) * PAGE - 1
    processor = (
        PaymentIntent.objects.order_by("-created", "-id")
        .values_list("processor", flat=True)
        .first()
        or "paylab"
    )
    week_ago = (timezone.now() - timedelta(days=7)).date().isoformat()
    # The brand fewest payments carry, by a sample of the card columns.
    sample = Counter(
        PaymentIntent.objects.exclude(card_brand="")
        .order_by("-created", "-id")
        .values_list("card_brand", flat=True)[:200_000]
    )
    rare_brand = min(sample, key=lambda brand: sample[brand]) if sample else "jcb"
    filters: list[tuple[str, dict[str, str]]] = [
        ("no filter", {}),
        ("status succeeded", {"status": "succeeded"}),
        ("status requires_capture", {"status": "requires_capture"}),
        (f"processor {processor}", {"processor": processor}),
        ("currency jpy", {"currency": "jpy"}),
        ("brand amex", {"brand": "amex"}),
        ("amount 10-20", {"amount_min": "10", "amount_max": "20"}),
        ("last 7 days", {"date_from": week_ago}),
        ("sorted by amount", {"sort": "-amount"}),
        (
            "sorted by amount, amount 10-20, no currency",
            {"sort": "-amount", "amount_min": "10", "amount_max": "20"},
        ),
        (f"brand {rare_brand} (rarest)", {"brand": rare_brand}),
        ("succeeded + usd + visa", {"status": "succeeded", "currency": "usd", "brand": "visa"}),
    ]
    filters += [(f"search {name}", {"q": q}) for name, q in search_values()]
    print(f"payments in the database: {total:,}; page size {PAGE}; page {args.page}")
    print(f"{'request':64} {'median ms':>10} {'p95 ms':>8} {'SQL':>4}")
    scopes: list[tuple[str, dict[str, str]]] = [("staff", {})]
    if merchant is not None:
        scopes.append((f"merchant {merchant.slug}", {"merchant": str(merchant.pk)}))
    for scope_name, scope in scopes:
        for name, params in filters:
            if args.only not in name:
                continue
            params = {**scope, **params}
            for page, after in ((1, ""), (args.page, cursor_at(params, offset))):
                if after is None:
                    continue
                url = "/payments/?" + urlencode({**params, **({"after": after} if after else {})})
                median, p95, statements = measure(client, url, args.runs)
                label = f"{scope_name}, {name}, page {page:,}"
                print(f"{label:64} {median:10.1f} {p95:8.1f} {statements:4}", flush=True)
                if args.explain:
                    explain(client, url)


if __name__ == "__main__":
    main()
