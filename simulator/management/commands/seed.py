"""`manage.py seed --payments 1000000 --days 90 [--merchants N]`: history, fast.

Writes payments with their charges, refunds, disputes, events, ledger and
outbox rows through the bulk path of `simulator.seeding` (PostgreSQL COPY,
batched inserts on SQLite), with time-of-day and weekday patterns, then
rebuilds analytics' rollups from the event log. `manage.py verify` passes
afterwards. `-v 2` prints the wall time of each phase.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from simulator import seeding


class Command(BaseCommand):
    help = "Seed historical payments in bulk (every outcome, refunds, disputes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--payments", type=int, default=10_000)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--merchants", type=int, default=1)
        parser.add_argument("--seed", type=int, help="the same seed, the same history")
        parser.add_argument("--batch", type=int, default=10_000)
        parser.add_argument("--no-rollups", action="store_true", help="skip the rollup rebuild")
        parser.add_argument(
            "--indexes",
            choices=("auto", "keep", "rebuild"),
            default="auto",
            help=(
                "PostgreSQL: 'rebuild' drops the written tables' secondary indexes and foreign "
                "keys, loads in one transaction and recreates them (locks the tables: not for a "
                f"live system); 'auto' does so from {seeding.BULK_THRESHOLD:,} payments when the "
                "seed at least doubles the payments table"
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["payments"] < 1 or options["days"] < 1 or options["merchants"] < 1:
            raise CommandError("--payments, --days and --merchants must be positive.")
        merchants = seeding.merchants_for_seed(options["merchants"])
        started = time.monotonic()
        stream = getattr(self.stdout, "_out", sys.stdout)

        def progress(done: int, total: int) -> None:
            width = 30
            filled = int(width * done / total)
            rate = done / max(time.monotonic() - started, 1e-6)
            stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} payments  {rate:,.0f}/s "
            )
            stream.flush()

        report = seeding.payments_seed(
            payments=options["payments"],
            days=options["days"],
            merchants=merchants,
            seed=options["seed"],
            batch=options["batch"],
            progress=progress,
            indexes=options["indexes"],
        )
        stream.write("\n")
        seeded = time.monotonic() - started
        self.stdout.write(
            f"Seeded {report.payments:,} payments ({report.rows:,} rows) for "
            f"{len(merchants)} merchant(s) in {seeded:.1f} s"
            + (" (indexes and foreign keys rebuilt)." if report.rebuilt_indexes else ".")
        )
        if not options["no_rollups"]:
            rollups = time.monotonic()
            if seeding.rebuild_rollups(bulk=report.rebuilt_indexes, phases=report.phases):
                self.stdout.write(
                    f"Rebuilt the analytics rollups in {time.monotonic() - rollups:.1f} s"
                    + (
                        " (their indexes and foreign keys rebuilt)."
                        if report.rebuilt_indexes
                        else "."
                    )
                )
            else:
                self.stdout.write("No analytics rollups to rebuild.")
        self.stdout.write(
            f"  ({report.recording_seconds:.1f} s of it recording the "
            f"{len(seeding.SHAPES) * len(seeding.CURRENCIES)} shapes through the services)"
        )
        if options["verbosity"] > 1:
            for name, seconds in sorted(report.phases.items(), key=lambda kv: -kv[1]):
                self.stdout.write(f"  {name.ljust(32)} {seconds:7.1f} s")
        for name, count in sorted(report.by_shape.items(), key=lambda kv: -kv[1]):
            self.stdout.write(f"  {name.ljust(20)} {count:,}")
