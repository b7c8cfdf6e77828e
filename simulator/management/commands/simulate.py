"""`manage.py simulate`: start, list, watch and stop simulation runs.

    simulate --scenario steady --rate 50 --duration 60 [--merchant SLUG] [--seed 42] [--wait]
    simulate --list | --status ID | --stop ID

Without `--wait` the run's slices are queued for the Celery workers and the
command prints the run id. With `--wait` the command executes the slices
itself — in this process, a thread per slice, through the same code a
worker runs (`simulator.services.run_inline`) — showing a live progress bar
and a summary table at the end. It does not wait on workers: in embedded
mode there may be none running, and a run must not sit queued while a
progress bar waits on nothing. Ctrl-C stops the run (status `canceled`).
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Merchant
from config.errors import PayLabError
from simulator import scenarios, selectors, services
from simulator.models import SimulationRun


class Command(BaseCommand):
    help = "Generate payment traffic through PayLab's services (see docs/simulator.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scenario", choices=list(scenarios.SCENARIOS), default="steady")
        parser.add_argument("--rate", type=float, help="payments per second")
        parser.add_argument("--duration", type=float, help="seconds")
        parser.add_argument("--count", type=int, help="payments in total, instead of --duration")
        parser.add_argument("--merchant", action="append", help="merchant slug (repeatable)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--slices", type=int, help="parallel slices (default: 1 per 250/s)")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=JSON",
            help='any other parameter, e.g. --param refund_probability=0.2 --param \'outcomes={"success":80,"generic_decline":20}\'',
        )
        parser.add_argument("--wait", action="store_true", help="run here and show progress")
        parser.add_argument("--list", action="store_true", help="list scenarios and recent runs")
        parser.add_argument("--status", metavar="ID")
        parser.add_argument("--stop", metavar="ID")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            return self._list()
        if options["status"]:
            return self._summary(self._run(options["status"]))
        if options["stop"]:
            try:
                run = services.simulation_run_stop(run_id=options["stop"])
            except PayLabError as error:
                raise CommandError(error.message) from None
            self.stdout.write(f"{run.id}: {run.status}")
            return None
        return self._start(options)

    def _run(self, run_id: str) -> SimulationRun:
        run = selectors.get_run(run_id, None)
        if run is None:
            raise CommandError(f"No such simulation run: {run_id}")
        return run

    def _start(self, options: dict[str, Any]) -> None:
        slugs = options["merchant"] or []
        merchant = (
            Merchant.objects.filter(slug=slugs[0]).first()
            if slugs
            else Merchant.objects.order_by("pk").first()
        )
        if merchant is None:
            raise CommandError(
                "No such merchant."
                if slugs
                else "No merchant yet: create one (manage.py merchant)."
            )
        params: dict[str, Any] = {"merchants": slugs}
        for name in ("rate", "duration", "count", "seed", "slices"):
            if options[name] is not None:
                params[name] = options[name]
        for item in options["param"]:
            name, _, raw = item.partition("=")
            try:
                params[name] = json.loads(raw)
            except ValueError:
                params[name] = raw
        try:
            run = services.simulation_run_create(
                merchant=merchant,
                scenario=options["scenario"],
                params=params,
                started_via="cli",
                enqueue=not options["wait"],
            )
        except PayLabError as error:
            raise CommandError(error.message) from None
        if not options["wait"]:
            self.stdout.write(run.id)
            return
        self.stdout.write(
            f"{run.id}: {run.scenario}, {run.planned} payments over "
            f"{scenarios.total_duration(run.params):.0f} s, seed {run.seed}, {run.slice_count} slice(s)"
        )
        try:
            services.run_inline(run.id, on_tick=lambda: self._bar(run))
        except KeyboardInterrupt:
            services.simulation_run_stop(run_id=run.id)
            services.run_inline(run.id)
        self._bar(run, final=True)
        run.refresh_from_db()
        self._summary(run)

    def _bar(self, run: SimulationRun, *, final: bool = False) -> None:
        run.refresh_from_db()
        p = selectors.progress(run)
        width = 30
        filled = int(width * p.fraction)
        line = (
            f"\r[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.planned} "
            f"{p.actual_rate:7.1f}/s ok {p.counters['succeeded']} failed {p.counters['failed']} "
            f"follow-ups {p.follow_ups_pending}  "
        )
        # Straight to the stream: OutputWrapper would end every write with a newline.
        stream: TextIO = getattr(self.stdout, "_out", sys.stdout)
        stream.write(line + ("\n" if final else ""))
        stream.flush()

    def _summary(self, run: SimulationRun) -> None:
        p = selectors.progress(run)
        rows = [
            ("run", run.id),
            ("scenario", run.scenario),
            ("status", run.status),
            ("seed", str(run.seed)),
            ("planned", str(p.planned)),
            ("elapsed", f"{p.elapsed:.1f} s"),
            ("actual rate", f"{p.actual_rate:.1f} payments/s"),
            *((name, str(value)) for name, value in p.counters.items()),
            *((f"  {code}", str(n)) for code, n in p.failures.items()),
            ("follow-ups pending", str(p.follow_ups_pending)),
        ]
        rows.extend(("note", note) for note in run.notes)
        if run.error:
            rows.append(("error", run.error))
        width = max(len(k) for k, _ in rows)
        self.stdout.write("-" * (width + 24))
        for key, value in rows:
            self.stdout.write(f"{key.ljust(width)}  {value}")

    def _list(self) -> None:
        self.stdout.write("Scenarios:")
        for scenario in scenarios.SCENARIOS.values():
            self.stdout.write(f"  {scenario.name.ljust(20)} {scenario.title}")
        self.stdout.write("Recent runs:")
        for run in selectors.runs(None)[:20]:
            p = selectors.progress(run)
            self.stdout.write(
                f"  {run.id}  {run.scenario.ljust(20)} {run.status.ljust(10)} "
                f"{p.done}/{p.planned}  created {p.counters['created']}"
            )
