"""`manage.py rollups project|rebuild|prune|lag`."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analytics import services


class Command(BaseCommand):
    help = "Maintain the analytics rollups: project new events, rebuild from scratch, prune, lag."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["project", "rebuild", "prune", "lag"])
        parser.add_argument(
            "--follow",
            action="store_true",
            help="project: keep projecting, once a second, until interrupted",
        )

    def handle(self, *args: Any, action: str, follow: bool = False, **options: Any) -> None:
        started = time.monotonic()
        if action == "rebuild":
            rows = services.rollups_rebuild(progress=self.stdout.write)
            self.stdout.write(f"{rows} rollup rows in {time.monotonic() - started:.1f}s")
        elif action == "prune":
            self.stdout.write(f"{services.rollups_prune()} minute cells pruned")
        elif action == "lag":
            self.stdout.write(str(services.rollups_lag()))
        else:
            while True:
                count = services.rollups_catch_up()
                if count or not follow:
                    self.stdout.write(f"{count} events projected")
                if not follow:
                    return
                time.sleep(1.0)
