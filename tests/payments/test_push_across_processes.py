"""Pushes reach open pages whichever process committed the event (issue 5).

Real processes, in the mode the suite runs in:

- embedded (no DATABASE_URL / REDIS_URL): a fresh SQLite file, daphne (which
  runs the relay itself, over its in-memory channel layer) and a Celery
  worker on the filesystem broker;
- full: the test's PostgreSQL database and Redis, daphne, `manage.py relay`
  and a Celery worker.

A browser stand-in holds `/ws/events/` open on daphne while events are
committed by the web process (an API request), by a management command
(`manage.py shell`) and by the worker (a refund on the refund-fails card is
settled, and failed, by the `settle_refund` task). Each must arrive.
Slow (daphne, a worker and migrations start): ~20 s.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from tests.processes import free_port, manage, spawn, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FULL = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))

pytestmark = pytest.mark.django_db(transaction=True) if FULL else []

CAST = """
import json
from django.conf import settings
from django.test import Client
from accounts import services
merchant, issued = services.merchant_create_with_key(name="Procs", slug="procs")
user = services.user_create(email="watch@paylab.test", password="x" * 20, role="viewer")
client = Client()
client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
name = settings.SESSION_COOKIE_NAME
print(json.dumps({"secret": issued.secret, "cookie": f"{name}={client.cookies[name].value}"}))
"""

COMMAND_PAYMENT = """
from accounts.models import Merchant
from payments.models.intents import CaptureMethod
from payments.services import intents
intent = intents.payment_intent_create(
    merchant=Merchant.objects.get(slug="procs"), amount=1234, currency="usd",
    capture_method=CaptureMethod.AUTOMATIC, payment_method="pm_card_visa", confirm=True,
).intent
print(intent.pk)
"""


class Feed:
    """The smallest websocket client that reads text frames (what a page does)."""

    def __init__(self, port: int, path: str, cookie: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
                f"Cookie: {cookie}\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n", 1)[0], head

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> dict[str, Any]:
        while True:
            first, second = self._take(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(self._take(2), "big")
            elif length == 127:
                length = int.from_bytes(self._take(8), "big")
            payload = self._take(length)
            if first & 0x0F == 0x8:
                raise ConnectionError("closed by the server")
            if first & 0x0F == 0x1:
                message: dict[str, Any] = json.loads(payload)
                return message

    def wait_for_event(self, object_id: str, event_type: str, timeout: float) -> dict[str, Any]:
        self.sock.settimeout(timeout)
        seen = []
        while True:
            try:
                message = self.receive()
            except TimeoutError as error:
                raise AssertionError(f"no {event_type} of {object_id}; saw {seen}") from error
            event = message["event"]
            seen.append((event["type"], event["data"]["object"].get("id")))
            if event["type"] == event_type and event["data"]["object"].get("id") == object_id:
                return message

    def close(self) -> None:
        self.sock.close()


class Stack:
    def __init__(self, var: Path) -> None:
        self.var = var
        self.web_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLAB_")}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            PAYLAB_SECRET_KEY="push-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            PAYLAB_VAR_DIR=str(var),
            PAYLAB_RATE_LIMIT="1000000",
            PAYLAB_LOG_LEVEL="WARNING",
            # No random processor declines: the refund needs a success.
            PAYLAB_PROCESSOR_FAULTS="false",
            PAYLAB_PROCESSOR_LATENCY="false",
        )
        if FULL:
            db = connection.settings_dict
            env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            env["REDIS_URL"] = os.environ["REDIS_URL"]
            env["PAYLAB_DB_POOL_MAX"] = "4"
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> str:
        return manage(self.env, *args, timeout=120)

    def spawn(self, name: str, *command: str) -> None:
        self.processes.append(spawn(self.var, name, self.env, *command))

    def start(self) -> None:
        if not FULL:
            self.run("migrate", "-v0")
        self.spawn(
            "web",
            str(BIN / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(self.web_port),
            "config.asgi:application",
        )
        if FULL:
            self.spawn("relay", sys.executable, "manage.py", "relay", "--poll", "0.5")
        self.spawn(
            "worker",
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        )
        wait_for(lambda: httpx.get(self.api + "/healthz").status_code == 200, 60, "daphne")

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.var.glob("*.log")
        )

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="paylab-push-") as var:
        running = Stack(Path(var))
        try:
            running.start()
            yield running
        finally:
            running.stop()


def api_post(stack: Stack, secret: str, path: str, data: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.api}/v1/{path}",
        data=data,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_pushes_reach_an_open_page_from_the_web_a_command_and_the_worker(stack: Stack) -> None:
    # given a staff member's page on the live feed
    cast = json.loads(stack.run("shell", "-c", CAST))
    feed = Feed(stack.web_port, "/ws/events/", cast["cookie"])
    try:
        # when the web process commits (an API request)
        paid = api_post(
            stack,
            cast["secret"],
            "payment_intents",
            {
                "amount": "2000",
                "currency": "usd",
                "payment_method": "pm_card_refundFail",
                "confirm": "true",
            },
        )
        # then its events arrive
        feed.wait_for_event(paid["id"], "payment_intent.created", 30)

        # when a management command commits
        from_command = stack.run("shell", "-c", COMMAND_PAYMENT)
        # then
        feed.wait_for_event(from_command, "payment_intent.created", 30)

        # when the worker commits (the refund-fails card's refund is
        # settled — and failed — by the settle_refund task, 5 s later)
        assert paid["status"] == "succeeded", paid
        refund = api_post(stack, cast["secret"], "refunds", {"payment_intent": paid["id"]})
        assert refund["status"] == "pending"
        # then
        failed = feed.wait_for_event(refund["id"], "refund.failed", 60)
        assert failed["event"]["data"]["object"]["status"] == "failed"
    except AssertionError as error:
        raise AssertionError(f"{error}\n{stack.logs()}") from error
    finally:
        feed.close()
