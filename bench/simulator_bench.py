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

from django.db import connection  # noqa: E402

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


def _server_state() -> dict[str, float]:
    """WAL position, checkpoints and buffers written so far (server-wide)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, checkpoints_timed, checkpoints_req,"
            " buffers_checkpoint, buffers_clean, buffers_backend FROM pg_stat_bgwriter"
        )
        row = cursor.fetchone()
    assert row is not None
    keys = ("wal_bytes", "checkpoints_timed", "checkpoints_req", "buffers_checkpoint")
    return {
        **dict(zip(keys, map(float, row), strict=False)),
        "buffers_other": float(row[4] + row[5]),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a local process (PostgreSQL's backend)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> float:
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    busy = sum(int(v) for k, v in enumerate(fields) if k not in (3, 4))  # not idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


def seed(args: argparse.Namespace) -> None:
    """One seed, with where its time went: the phases, the CPU of this
    process, of its PostgreSQL backend and of the whole machine, the WAL
    written and the checkpoints it caused."""
    from simulator import seeding

    print(f"load average before: {os.getloadavg()}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])  # type: ignore[index]
    before, backend_cpu, machine = _server_state(), _cpu_seconds(backend), _machine_cpu()
    own = os.times()
    started = time.monotonic()
    report = seeding.payments_seed(
        payments=args.payments,
        days=90,
        merchants=seeding.merchants_for_seed(3),
        seed=1,
        batch=args.batch,
        indexes=args.indexes,
    )
    loaded = time.monotonic() - started
    seed_backend_cpu = _cpu_seconds(backend) - backend_cpu
    rollups = 0.0
    if args.rollups:
        rollups_started = time.monotonic()
        seeding.rebuild_rollups(bulk=report.rebuilt_indexes, phases=report.phases)
        rollups = time.monotonic() - rollups_started
    wall = time.monotonic() - started
    after, spent = _server_state(), os.times()
    print(
        f"seed {report.payments:,} payments ({report.rows:,} rows): {loaded:.1f} s"
        + (f" + rollups {rollups:.1f} s" if args.rollups else "")
        + f" = {wall:.1f} s wall"
    )
    for name, seconds in sorted(report.phases.items(), key=lambda kv: -kv[1]):
        print(f"  {name:32} {seconds:7.1f} s")
    print(
        f"CPU: this process {spent.user - own.user + spent.system - own.system:.1f} s, its backend "
        f"{seed_backend_cpu:.1f} s seeding + {_cpu_seconds(backend) - backend_cpu - seed_backend_cpu:.1f} s "
        f"rollups, the machine {_machine_cpu() - machine:.1f} s"
    )
    wal = (after["wal_bytes"] - before["wal_bytes"]) / 2**20
    print(
        f"WAL {wal:,.0f} MiB; checkpoints {after['checkpoints_req'] - before['checkpoints_req']:.0f}"
        f" requested, {after['checkpoints_timed'] - before['checkpoints_timed']:.0f} timed; "
        f"buffers written by checkpoints {after['buffers_checkpoint'] - before['buffers_checkpoint']:,.0f}"
        f", by the bgwriter/backends {after['buffers_other'] - before['buffers_other']:,.0f}"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"database size {cursor.fetchone()[0]}")  # type: ignore[index]
    print(f"load average after: {os.getloadavg()}")


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
    s.add_argument("--rollups", action="store_true", help="rebuild the rollups after (timed)")
    args = parser.parse_args()
    traffic(args) if args.what == "traffic" else seed(args)
