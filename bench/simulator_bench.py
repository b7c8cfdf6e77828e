"""Simulator benchmarks (docs/benchmarks.md).

    DATABASE_URL=… REDIS_URL=… PAYLAB_DEBUG=true .venv/bin/python bench/simulator_bench.py traffic --rate 1000 --duration 20 --slices 2
    DATABASE_URL=… PAYLAB_DEBUG=true .venv/bin/python bench/simulator_bench.py seed --payments 1000000 [--indexes keep]

`traffic` runs a `steady` run in this process (a thread per slice: the same
code a worker runs) at a rate above what the machine sustains, and reports
the payments/s actually created through the real services. Run it against a
throwaway database: it writes real payments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from accounts.models import Merchant  # noqa: E402
from accounts.services import merchant_create_with_key  # noqa: E402
from simulator import selectors, services  # noqa: E402


def traffic(args: argparse.Namespace) -> None:
    merchant = (
        Merchant.objects.filter(slug="bench-sim").first()
        or merchant_create_with_key(name="Bench sim", slug="bench-sim")[0]
    )
    run = services.simulation_run_create(
        merchant=merchant,
        scenario="steady",
        params={
            "rate": args.rate,
            "duration": args.duration,
            "slices": args.slices,
            "refund_probability": 0,
            "manual_capture_share": 0,
            "seed": 1,
        },
        enqueue=False,
    )
    started = time.monotonic()
    services.run_inline(run.id)
    wall = time.monotonic() - started
    run.refresh_from_db()
    p = selectors.progress(run)
    print(
        f"{p.counters['created']} payments in {wall:.1f} s: {p.counters['created'] / wall:.0f}/s "
        f"(target {args.rate}/s, {args.slices} slices)"
    )


def seed(args: argparse.Namespace) -> None:
    started = time.monotonic()
    call_command(
        "seed",
        payments=args.payments,
        days=90,
        merchants=3,
        no_rollups=True,
        indexes=args.indexes,
        batch=args.batch,
    )
    print(f"seed {args.payments}: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("traffic")
    t.add_argument("--rate", type=float, default=1000)
    t.add_argument("--duration", type=float, default=20)
    t.add_argument("--slices", type=int, default=2)
    s = sub.add_parser("seed")
    s.add_argument("--payments", type=int, default=1_000_000)
    s.add_argument("--indexes", choices=("auto", "keep", "rebuild"), default="auto")
    s.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    traffic(args) if args.what == "traffic" else seed(args)
