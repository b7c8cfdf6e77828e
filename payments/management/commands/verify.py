"""`manage.py verify`: check every stored invariant; exit 1 on any violation."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.services import verify


class Command(BaseCommand):
    help = (
        "Rebuild every payment from its events and compare; check the ledger balances, merchant "
        "balances, idempotency keys, and that no full card number is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-violations", type=int, default=50, help="How many violations to print."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()

        def progress(name: str) -> None:
            self.stdout.write(f"· checking: {name}")

        report = verify.run(progress=progress)
        self.stdout.write("")
        for name, count in report.checked.items():
            self.stdout.write(f"  {name:<28} {count:>10,}")
        elapsed = time.perf_counter() - started
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"verify: OK — no violations ({elapsed:.1f}s)"))
            return
        for violation in report.violations[: options["max_violations"]]:
            self.stderr.write(f"  ✗ {violation}")
        hidden = len(report.violations) - options["max_violations"]
        if hidden > 0:
            self.stderr.write(f"  … and {hidden} more")
        raise CommandError(f"verify: {len(report.violations)} violation(s) found ({elapsed:.1f}s)")
