"""`manage.py relay`: the outbox relay process of full mode (Procfile `relay`).

Several may run (one per machine, say): one publishes at a time, the others
stand by (see payments.services.outbox).
"""

from __future__ import annotations

import gc
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from payments import relay


class Command(BaseCommand):
    help = "Publish committed events to websockets and webhook endpoints (the outbox relay)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--poll", type=float, default=1.0, help="Seconds between polls when not nudged."
        )
        parser.add_argument(
            "--linger",
            type=float,
            default=None,
            help="Seconds to wait after a nudge before publishing, so that window's commits "
            "leave as one batch (one websocket message per client); 0: at once. "
            "Default: PAYLAB_RELAY_LINGER_SECONDS (0.01).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if settings.PAYLAB_RELAY_IN_WEB:
            # Embedded mode: pushes must come from daphne's own in-memory
            # layer, so daphne relays; a second relay here would publish rows
            # to a layer no page listens to. Stay up (honcho stops every
            # process when one exits) and idle.
            self.stdout.write("relay: embedded mode, the web process relays; idle")
            stop.wait()
            return
        self.stdout.write("relay: publishing the outbox")
        # Django and the app, loaded by now, live as long as the process: out
        # of the collector's way, a full collection no longer stalls a push
        # for tens of milliseconds (as in config/asgi.py).
        gc.freeze()
        linger = options["linger"]
        if linger is None:
            linger = settings.PAYLAB_RELAY_LINGER_SECONDS
        relay.run_forever(poll_seconds=options["poll"], stop=stop, linger_seconds=linger)
        self.stdout.write("relay: stopped")
