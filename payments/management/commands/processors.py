"""`manage.py processors export [FILE]` / `import FILE`: processors and
routing rules as one JSON document (the shape of payments.processors.defaults).

`import` creates or updates processors by name and replaces the routing rules
(unless `--keep-rules`); it validates everything first and writes nothing
when any part is wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import PayLabError
from payments.services import processors


class Command(BaseCommand):
    help = "Import or export the simulated processors and routing rules as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="write the JSON document (stdout by default)")
        export.add_argument("file", nargs="?", default="-")
        load = sub.add_parser("import", help="read a JSON document ('-' for stdin)")
        load.add_argument("file")
        load.add_argument("--keep-rules", action="store_true", help="add rules, keep others")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            text = json.dumps(processors.processors_export(), indent=2, sort_keys=False) + "\n"
            if options["file"] == "-":
                self.stdout.write(text, ending="")
            else:
                Path(options["file"]).write_text(text)
            return
        source = options["file"]
        try:
            raw = sys.stdin.read() if source == "-" else Path(source).read_text()
            document = json.loads(raw)
        except (OSError, json.JSONDecodeError) as error:
            raise CommandError(f"cannot read {source}: {error}") from None
        try:
            count, rules = processors.processors_import(
                document=document, replace_rules=not options["keep_rules"]
            )
        except PayLabError as error:
            raise CommandError(error.message) from None
        except ValidationError as error:
            raise CommandError(f"invalid processor: {error}") from None
        self.stdout.write(f"imported {count} processors and {rules} routing rules")
