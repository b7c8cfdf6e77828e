"""Simulator benchmarks (docs/benchmarks.md).

    DATABASE_URL=… REDIS_URL=… PAYLAB_DEBUG=true .venv/bin/python bench/simulator_bench.py traffic --rate 1000 --duration 20 --slices 2 [--workers 2]
    DATABASE_URL=… PAYLAB_DEBUG=true .venv/bin/python bench/simulator_bench.py seed --payments 1000000 --rollups [--indexes keep]

`traffic` runs a `steady` run at a rate above what the machine sustains and
reports the payments/s actually created through the real services, and the
CPU per payment: with `--workers 2` in a real Celery worker (a process per
slice, as full mode runs it), otherwise as threads of this process. Run it
against a throwaway database: it writes real payments.

`seed` times one historical seed by phase, with the CPU of its PostgreSQL
backend, the WAL it wrote and the checkpoints it caused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
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


def _backend_cpu(database: str, seen: dict[int, float]) -> float:
    """CPU seconds so far of the PostgreSQL backends connected to `database`
    (other than this process's own). `seen` keeps each backend's last
    reading, so one that has exited since (a worker reconnects between its
    tasks) still counts what it had used when last read."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        pids = [int(row[0]) for row in cursor.fetchall()]
    for pid in pids:
        with contextlib.suppress(OSError):
            seen[pid] = _cpu_seconds(pid)
    return sum(seen.values())


def traffic(args: argparse.Namespace) -> None:
    """A `steady` run at a rate above what the machine sustains. With
    `--workers N`, as the product runs it in full mode: the slices are
    Celery tasks, executed by a real `celery worker -c N` (prefork: a
    process per slice, so both cores are used); otherwise every slice is a
    thread of this process (`run_inline`, what `simulate --wait` does),
    sharing one GIL."""
    merchant = (
        Merchant.objects.filter(slug="bench-sim").first()
        or merchant_create_with_key(name="Bench sim", slug="bench-sim")[0]
    )
    print(f"load average before: {os.getloadavg()}")
    worker: subprocess.Popen[bytes] | None = None
    if args.workers:
        from config.celery import app

        app.control.purge()
        worker = subprocess.Popen(  # noqa: S603 (our own interpreter and fixed arguments)
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                f"--concurrency={args.workers}",
                "--pool=prefork",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=WARNING",
            ],
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        time.sleep(args.warmup)  # the worker's processes are up and polling
    own, machine = os.times(), _machine_cpu()
    run = services.simulation_run_create(
        merchant=merchant,
        scenario="steady",
        params={
            "rate": args.rate,
            "duration": args.duration,
            "slices": args.slices,
            "seed": 1,
            # Without --follow-ups every operation is a create+confirm; with
            # them, the scenario's manual captures, voids and refunds run too.
            **({} if args.follow_ups else {"refund_probability": 0, "manual_capture_share": 0}),
        },
        enqueue=worker is not None,
    )
    started = time.monotonic()
    database = str(connection.settings_dict["NAME"])
    backends = 0.0
    seen: dict[int, float] = {}
    try:
        if worker is None:
            services.run_inline(run.id)
        else:
            while True:
                run.refresh_from_db()
                if run.status not in ("queued", "running", "stopping"):
                    break
                backends = _backend_cpu(database, seen)
                time.sleep(0.2)
        wall = time.monotonic() - started
    finally:
        if worker is not None:
            backends = max(backends, _backend_cpu(database, seen))
            worker.terminate()  # warm shutdown: the pool's children exit and are reaped
            worker.wait(timeout=60)
    spent = os.times()
    run.refresh_from_db()
    p = selectors.progress(run)
    created = p.counters["created"]
    python_cpu = (
        spent.user - own.user + spent.system - own.system
        if worker is None
        else spent.children_user - own.children_user + spent.children_system - own.children_system
    )
    print(
        f"{created} payments in {wall:.1f} s: {created / wall:.0f}/s "
        f"(target {args.rate}/s, {args.slices} slices, "
        + (f"celery worker -c {args.workers})" if worker else "threads of one process)")
    )
    print(
        f"CPU per payment: Python {1000 * python_cpu / max(created, 1):.1f} ms"
        + (
            f", PostgreSQL backends {1000 * backends / max(created, 1):.1f} ms"
            if worker is not None
            else ""
        )
        + f"; the machine {1000 * (_machine_cpu() - machine) / max(created, 1):.1f} ms "
        f"(run status {run.status})"
    )
    print(f"counters: {dict(p.counters)}")
    print(f"load average after: {os.getloadavg()}")


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
    t.add_argument(
        "--workers", type=int, default=0, help="run the slices in a celery worker -c N (full mode)"
    )
    t.add_argument("--warmup", type=float, default=5, help="seconds for the worker to start")
    t.add_argument(
        "--follow-ups",
        action="store_true",
        help="keep the steady scenario's manual captures (10 %%) and refunds (5 %%)",
    )
    s = sub.add_parser("seed")
    s.add_argument("--payments", type=int, default=1_000_000)
    s.add_argument("--indexes", choices=("auto", "keep", "rebuild"), default="auto")
    s.add_argument("--batch", type=int, default=10_000)
    s.add_argument("--rollups", action="store_true", help="rebuild the rollups after (timed)")
    args = parser.parse_args()
    traffic(args) if args.what == "traffic" else seed(args)
