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
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("PAYLAB_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.test import Client  # noqa: E402

from accounts import services  # noqa: E402
from accounts.models import Merchant, User  # noqa: E402
from payments import selectors  # noqa: E402
from payments.models import PaymentIntent  # noqa: E402

PAGE = 50


def cursor_at(offset: int, merchant_id: int | None) -> str:
    query = PaymentIntent.objects.order_by("-created", "-id")
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    created, pk = query.values_list("created", "id")[offset]
    return selectors._encode_cursor(created, pk)


def measure(client: Client, url: str, runs: int) -> tuple[float, float]:
    client.get(url)  # warm: template compilation, plans, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--page", type=int, default=1000)
    args = parser.parse_args()

    total = PaymentIntent.objects.count()
    email = "explorer-bench@paylab.test"
    user = User.objects.filter(email=email).first() or services.user_create(
        email=email, password=None, role="operator"
    )
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    merchant = Merchant.objects.order_by("id").first()
    offset = (args.page - 1) * PAGE - 1
    print(f"payments in the database: {total:,}; page size {PAGE}; page {args.page}")
    print(f"{'request':58} {'median ms':>10} {'p95 ms':>8}")
    rows = [
        ("staff, first page", "/payments/"),
        (f"staff, page {args.page}", f"/payments/?after={cursor_at(offset, None)}"),
    ]
    if merchant is not None:
        rows += [
            (f"merchant {merchant.slug}, first page", f"/payments/?merchant={merchant.pk}"),
            (
                f"merchant {merchant.slug}, page {args.page}",
                f"/payments/?merchant={merchant.pk}&after={cursor_at(offset, merchant.pk)}",
            ),
        ]
    for name, url in rows:
        median, p95 = measure(client, url, args.runs)
        print(f"{name:58} {median:10.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
