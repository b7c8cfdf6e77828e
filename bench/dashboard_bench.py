"""Overview server time at 10 M payments (docs/benchmarks.md, "Dashboard").

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/paylab_bench_ana \\
    PAYLAB_DEBUG=true .venv/bin/python bench/dashboard_bench.py [--payments 10000000] [--runs 20]

What matters for the overview is the size of the rollup tables, not of the
payments table (it never reads payments). Until `manage.py seed` can load
10 M payments, this generates the rollup cells 10 M payments over 90 days
would produce — directly, set-based, in PostgreSQL — with the shape of
PayLab's traffic: 5 merchants, 3 processors, 4 currencies, 6 methods and
brands, success / 8 decline codes / refunds / disputes, 20 BINs, 100,000
customers (~half of them paying on any day), minute cells for the 48 h
retention. `--from-seed` skips the generation and measures whatever the
database holds (e.g. after `manage.py seed` and `rollups rebuild`).

The narrow per-chart tables (series, reasons, brands) are derived from the
generated full cube, and their total cells and the per-day top customers by
the rebuild's own code (`services.insert_totals`, `rank_top_customers`);
then VACUUM ANALYZE, as autovacuum would.

It then times the overview view in-process (Django test client, logged-in
staff user, the full page and the htmx partial that a range change swaps
in) for the 24 h and 90 d ranges, and each selector alone. `--explain`
prints EXPLAIN ANALYZE of every query the 90-day page runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PAYLAB_DEBUG", "true")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts import services as accounts  # noqa: E402
from accounts.models import Merchant, User  # noqa: E402
from analytics import selectors, services  # noqa: E402
from analytics.models import HISTOGRAM  # noqa: E402

TABLES = [cube.table for cube in services.TABLES]

DAYS = 90
MERCHANTS = [0.35, 0.25, 0.2, 0.12, 0.08]
PROCESSORS = [("paylab", 0.5), ("ironbank", 0.3), ("swift", 0.2)]
CURRENCIES = [
    ("usd", 0.55, 4_500),
    ("eur", 0.25, 3_900),
    ("gbp", 0.15, 3_200),
    ("jpy", 0.05, 5_000),
]
BRANDS = [
    ("card", "visa", 0.45),
    ("card", "mastercard", 0.3),
    ("card", "amex", 0.1),
    ("card", "discover", 0.05),
    ("upi", "upi", 0.06),
    ("wallet", "wallet", 0.04),
]
DECLINES = [
    "generic_decline",
    "insufficient_funds",
    "lost_card",
    "stolen_card",
    "expired_card",
    "incorrect_cvc",
    "processing_error",
    "fraudulent",
]
OUTCOMES = (
    [("succeeded", "", 0.86)]
    + [("failed", code, 0.10 / len(DECLINES)) for code in DECLINES]
    + [("refunded", "", 0.03), ("refund_failed", "", 0.002), ("disputed", "", 0.005)]
)
CUSTOMERS_PER_MERCHANT = 20_000


def _values(rows: list[tuple[object, ...]]) -> str:
    def lit(v: object) -> str:
        return f"'{v}'" if isinstance(v, str) else str(v)

    return ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in rows)


def generate(payments: int, merchant_ids: list[int]) -> None:
    """Rollup cells for `payments` payments spread over DAYS days, set-based."""
    per_hour = payments / (DAYS * 24)
    now = int(timezone.now().timestamp())
    start_hour = (now - DAYS * 86400) // 3600 * 3600
    end_hour = now // 3600 * 3600
    merchants = _values([(m, w) for m, w in zip(merchant_ids, MERCHANTS, strict=True)])
    processors = _values(list(PROCESSORS))
    currencies = _values(list(CURRENCIES))
    brands = _values(list(BRANDS))
    outcomes = _values(list(OUTCOMES))
    bins = _values(
        [
            (brand, f"{prefix}{k:05d}", w / 7)
            for brand, prefix, w in (("visa", 4, 0.5), ("mastercard", 5, 0.35), ("amex", 3, 0.15))
            for k in range(7)
        ]
    )
    hist_cols = ", ".join(HISTOGRAM)
    # Charges split over three latency buckets by processor; money-only outcomes have none.
    hist_vals = ", ".join(
        "CASE WHEN o.outcome IN ('succeeded','failed') THEN "
        + {3: "n - n / 2 - n / 4", 4: "n / 2", 6: "n / 4"}.get(i, "0")
        + " ELSE 0 END"
        for i in range(len(HISTOGRAM))
    )

    def cells(grain: int, first: int, last: int, rate: float) -> str:
        return f"""
        INSERT INTO analytics_rollup (grain, bucket, merchant_id, processor, currency, method,
                                      brand, outcome, code, count, amount, {hist_cols})
        SELECT {grain}, b, m.id, p.name, c.code, br.method, br.brand, o.outcome, o.code, n,
               n * c.ticket, {hist_vals}
        FROM generate_series({first}, {last}, {grain}) AS b
        CROSS JOIN (VALUES {merchants}) AS m(id, w)
        CROSS JOIN (VALUES {processors}) AS p(name, w)
        CROSS JOIN (VALUES {currencies}) AS c(code, w, ticket)
        CROSS JOIN (VALUES {brands}) AS br(method, brand, w)
        CROSS JOIN (VALUES {outcomes}) AS o(outcome, code, w)
        CROSS JOIN LATERAL (
            SELECT FLOOR({rate} * m.w * p.w * c.w * br.w * o.w * (0.6 + 0.8 * random())
                         + random())::bigint AS n
            OFFSET 0
        ) AS x
        WHERE n > 0
        """  # noqa: S608

    steps: list[tuple[str, str]] = [
        ("Rollup hour cells", cells(3600, start_hour, end_hour, per_hour)),
        (
            "Rollup minute cells (48 h)",
            cells(60, (now - 48 * 3600) // 60 * 60, now // 60 * 60, per_hour / 60),
        ),
        (
            "Rollup day cells (from hours)",
            f"""INSERT INTO analytics_rollup (grain, bucket, merchant_id, processor, currency,
                    method, brand, outcome, code, count, amount, {hist_cols})
                SELECT 86400, bucket / 86400 * 86400, merchant_id, processor, currency, method,
                       brand, outcome, code, SUM(count), SUM(amount),
                       {", ".join(f"SUM({h})" for h in HISTOGRAM)}
                FROM analytics_rollup WHERE grain = 3600
                GROUP BY bucket / 86400 * 86400, merchant_id, processor, currency, method, brand,
                         outcome, code""",  # noqa: S608
        ),
        (
            "SeriesRollup (from Rollup)",
            f"""INSERT INTO analytics_seriesrollup (grain, bucket, merchant_id, processor, currency,
                    outcome, count, amount, {hist_cols})
                SELECT grain, bucket, merchant_id, processor, currency, outcome, SUM(count),
                       SUM(amount), {", ".join(f"SUM({h})" for h in HISTOGRAM)}
                FROM analytics_rollup GROUP BY grain, bucket, merchant_id, processor, currency,
                     outcome""",  # noqa: S608
        ),
        (
            "ReasonRollup (from Rollup)",
            """INSERT INTO analytics_reasonrollup (grain, bucket, merchant_id, processor, currency,
                    code, count)
                SELECT grain, bucket, merchant_id, processor, currency, code, SUM(count)
                FROM analytics_rollup WHERE outcome = 'failed'
                GROUP BY grain, bucket, merchant_id, processor, currency, code""",
        ),
        (
            "BrandRollup (from Rollup)",
            """INSERT INTO analytics_brandrollup (grain, bucket, merchant_id, processor, currency,
                    method, brand, outcome, count)
                SELECT grain, bucket, merchant_id, processor, currency, method, brand, outcome,
                       SUM(count)
                FROM analytics_rollup WHERE outcome IN ('succeeded', 'failed')
                GROUP BY grain, bucket, merchant_id, processor, currency, method, brand,
                         outcome""",
        ),
        (
            "BinRollup",
            f"""INSERT INTO analytics_binrollup (grain, bucket, merchant_id, brand, bin, outcome, count)
                SELECT g, b / g * g, m.id, br.brand, br.brand_bin, o.outcome, SUM(n)
                FROM (VALUES (3600), (86400)) AS gr(g)
                CROSS JOIN generate_series({start_hour}, {end_hour}, 3600) AS b
                CROSS JOIN (VALUES {merchants}) AS m(id, w)
                CROSS JOIN (VALUES {bins}) AS br(brand, brand_bin, w)
                CROSS JOIN (VALUES ('succeeded', 0.9), ('failed', 0.1)) AS o(outcome, w)
                CROSS JOIN LATERAL (SELECT FLOOR({per_hour} * 0.9 * m.w * br.w * o.w *
                    (0.6 + 0.8 * random()) + random())::bigint AS n OFFSET 0) AS x
                WHERE n > 0
                GROUP BY g, b / g * g, m.id, br.brand, br.brand_bin, o.outcome""",  # noqa: S608
        ),
        (
            "CustomerRollup",
            f"""INSERT INTO analytics_customerrollup (grain, bucket, merchant_id, currency,
                    customer_id, count, amount)
                SELECT 86400, d, m.id, 'usd', 'cus_bench_' || m.id || '_' || k,
                       1 + (random() * 3)::int, (500 + random() * 20000)::bigint
                FROM generate_series({start_hour // 86400 * 86400}, {end_hour}, 86400) AS d
                CROSS JOIN (VALUES {merchants}) AS m(id, w)
                CROSS JOIN generate_series(1, {CUSTOMERS_PER_MERCHANT}) AS k
                WHERE random() < 0.5""",  # noqa: S608
        ),
        (
            "CustomerRollup weeks (from days)",
            """INSERT INTO analytics_customerrollup (grain, bucket, merchant_id, currency,
                    customer_id, count, amount)
                SELECT 604800, bucket / 604800 * 604800, merchant_id, currency, customer_id,
                       SUM(count), SUM(amount)
                FROM analytics_customerrollup WHERE grain = 86400
                GROUP BY bucket / 604800 * 604800, merchant_id, currency, customer_id""",
        ),
        (
            "StatusRollup",
            f"""INSERT INTO analytics_statusrollup (grain, bucket, merchant_id, status, count)
                SELECT g, b / g * g, m.id, s.status, SUM(FLOOR({per_hour} * m.w * s.w))::bigint
                FROM (VALUES (3600), (86400)) AS gr(g)
                CROSS JOIN generate_series({start_hour}, {end_hour}, 3600) AS b
                CROSS JOIN (VALUES {merchants}) AS m(id, w)
                CROSS JOIN (VALUES ('succeeded', 0.86), ('requires_payment_method', 0.09),
                    ('canceled', 0.03), ('requires_capture', 0.015), ('requires_action', 0.005))
                    AS s(status, w)
                GROUP BY g, b / g * g, m.id, s.status""",  # noqa: S608
        ),
    ]
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"TRUNCATE {table}")
        for label, sql in steps:
            started = time.monotonic()
            cursor.execute(sql)
            print(f"  {label}: {cursor.rowcount:,} rows in {time.monotonic() - started:.1f}s")
        for cube in services.CUBES:
            started = time.monotonic()
            rows = services.insert_totals(cursor, cube)
            if rows:
                print(
                    f"  {cube.model.__name__} totals: {rows:,} rows in {time.monotonic() - started:.1f}s"
                )
        started = time.monotonic()
        rows = services.rank_top_customers(cursor)
        print(f"  TopCustomerRollup: {rows:,} rows in {time.monotonic() - started:.1f}s")
        started = time.monotonic()
        cursor.execute(f"VACUUM ANALYZE {', '.join(TABLES)}")
        print(f"  VACUUM ANALYZE in {time.monotonic() - started:.1f}s")


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm: plans, template compilation
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def explain(client: Client) -> None:
    """Every query of the 90-day page (after a warm-up), with its plan's
    first line and PostgreSQL's execution time."""
    client.get("/?range=90d")
    with CaptureQueriesContext(connection) as queries:
        client.get("/?range=90d")
    print("\nQueries of the 90-day page (EXPLAIN ANALYZE):")
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT") or "analytics_" not in sql:
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = [row[0] for row in cursor.fetchall()]
            scans = [line.strip() for line in plan if "Scan" in line]
            print(f"  {plan[-1].strip()}  |  {sql[:90]}…")
            for line in scans[:2]:
                print(f"      {line[:150]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--from-seed",
        "--reuse",
        dest="from_seed",
        action="store_true",
        help="measure the rollups already in the database (after seed + rebuild, or a previous run)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE every query of the 90-day page"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run against PostgreSQL: DATABASE_URL=postgres://…")
    call_command("migrate", verbosity=0)
    merchants = list(Merchant.objects.order_by("pk")[: len(MERCHANTS)])
    for i in range(len(merchants), len(MERCHANTS)):
        merchants.append(accounts.merchant_create_with_key(name=f"Bench {i}", slug=f"bench-{i}")[0])
    user = User.objects.filter(email="bench@paylab.test").first() or accounts.user_create(
        email="bench@paylab.test",
        password="bench bench bench",  # noqa: S106 (a throwaway bench user)
        role="operator",
    )
    if not args.from_seed:
        print(f"Generating the rollups of {args.payments:,} payments over {DAYS} days…")
        generate(args.payments, [m.pk for m in merchants])
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608
            print(f"  {table}: {cursor.fetchone()[0]:,} rows")
    setup_test_environment()  # lets the test client's host in
    logging.getLogger("paylab.request").setLevel(logging.WARNING)
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    if args.explain:
        explain(client)
    print(f"\nServer time, ms (median / p95 of {args.runs} runs, in-process):")
    for name in ("24h", "90d"):
        for label, headers in (("full page", {}), ("htmx partial", {"HTTP_HX_REQUEST": "true"})):

            def get(name: str = name, headers: dict[str, str] = headers) -> None:
                response = client.get(f"/?range={name}", **headers)
                assert response.status_code == 200, response.status_code
                assert b"data-plotly" in response.content

            p50, p95 = timed(get, args.runs)
            print(f"  overview {name:>4} {label:<13} {p50:7.1f} / {p95:7.1f}")
        p50, p95 = timed(lambda name=name: client.get(f"/analytics/kpis/?range={name}"), args.runs)
        print(f"  overview {name:>4} {'KPI refresh':<13} {p50:7.1f} / {p95:7.1f}")
    print("\nSelectors alone, 90d, ms (median / p95):")
    scope = selectors.Scope(merchant_ids=None, window=selectors.Window.last("90d"))
    one = selectors.Scope(merchant_ids=(merchants[0].pk,), window=selectors.Window.last("90d"))
    for label, fn in (
        ("overview (KPIs + series)", lambda: selectors.overview(scope)),
        ("breakdown (reasons, brands)", lambda: selectors.breakdown(scope)),
        ("processors", lambda: selectors.processors(scope)),
        ("status distribution", lambda: selectors.status_distribution(scope)),
        ("top customers", lambda: selectors.top_customers(scope, "usd")),
        ("overview, one merchant", lambda: selectors.overview(one)),
        ("breakdown, one merchant", lambda: selectors.breakdown(one)),
        ("top customers, one merchant", lambda: selectors.top_customers(one, "usd")),
        ("bins", lambda: selectors.bins(scope)),
    ):
        p50, p95 = timed(fn, args.runs)
        print(f"  {label:<30} {p50:7.1f} / {p95:7.1f}")


if __name__ == "__main__":
    main()
