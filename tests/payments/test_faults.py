"""Nothing lost, with real processes in full mode (DESIGN: "Nothing lost").

The test starts PayLab's processes against the test database and a Redis
server of its own (so stopping it disturbs nobody else): daphne serving the
API, `manage.py relay`, and a Celery worker with its beat (`-B`). A webhook
receiver runs in the test. Then it breaks things:

- kill -9 the worker (its whole process group) during a burst of payments:
  after a restart the receiver has every event id at least once and every
  payment the API accepted exists;
- stop Redis for 30 s during traffic: the API answers 2xx or a clean 503 —
  never a 500 — and a 503 wrote nothing; once Redis is back the outbox
  drains and every event is delivered.

Both end with `manage.py verify` passing. Slow (a minute or two each) and
only in full mode: marked postgres and redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection
from django.db.models import Count

from accounts import services as accounts
from accounts.models import Merchant
from payments.models import Event, OutboxMessage, PaymentIntent, WebhookDelivery
from payments.services import webhooks
from tests.processes import free_port, wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Receiver:
    """A merchant's webhook endpoint: records every event id it receives."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        received = self.ids

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body)["id"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Stack:
    """PayLab's full-mode processes, each in its own process group."""

    def __init__(self, var: Path) -> None:
        self.var = var
        self.redis_port = free_port()
        self.web_port = free_port()
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "PAYLAB_SECRET_KEY": "fault-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "PAYLAB_VAR_DIR": str(var),
            "PAYLAB_RATE_LIMIT": "1000000",
            "PAYLAB_LOG_LEVEL": "WARNING",
            "PAYLAB_DB_POOL_MAX": "8",
            # Processors' own soft declines and timeouts would turn some of the
            # burst's 200s into 402s, and their latency adds a `processing` event to
            # each; what is tested here is that nothing is lost.
            "PAYLAB_PROCESSOR_FAULTS": "false",
            "PAYLAB_PROCESSOR_LATENCY": "false",
            "PAYLAB_WEBHOOK_CONNECT_TIMEOUT": "2",
            "PAYLAB_WEBHOOK_READ_TIMEOUT": "5",
            # The published schedule compressed 50 times (1.2 s, 6 s, 36 s, …): an
            # attempt that times out on a loaded box is retried within the
            # test's patience, as the real one would be within Stripe's.
            "PAYLAB_WEBHOOK_RETRY_SCALE": "0.02",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.commands = {
            "redis": [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            "web": [
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.web_port),
                "config.asgi:application",
            ],
            "relay": [sys.executable, "manage.py", "relay", "--poll", "0.5"],
            "worker": [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "-B",
                "-s",
                str(var / "beat-schedule"),
                "--concurrency",
                "4",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
            ],
        }

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, name: str) -> None:
        log = open(self.var / f"{name}.log", "ab")  # noqa: SIM115 (lives with the process)
        self.processes[name] = subprocess.Popen(
            self.commands[name],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if name == "redis":
            wait_for(self._redis_up, 10, "redis")
        if name == "web":
            wait_for(lambda: httpx.get(self.api + "/healthz").status_code == 200, 30, "daphne")

    def _redis_up(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5):
            return True

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM if name != "worker" else signal.SIGKILL)


@pytest.fixture
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="paylab-faults-") as var:
        running = Stack(Path(var))
        try:
            for name in ("redis", "web", "relay", "worker"):
                running.start(name)
            yield running
        finally:
            running.stop_all()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def merchant_with_endpoint(receiver: Receiver) -> tuple[Merchant, str]:
    merchant, issued = accounts.merchant_create_with_key(name="Faults", slug="faults")
    webhooks.webhook_endpoint_create(merchant=merchant, url=receiver.url, enabled_events=["*"])
    return merchant, issued.secret


def create_payment(api: str, secret: str, key: str) -> tuple[int, dict[str, Any]]:
    """One confirmed payment; network errors retried with the same
    Idempotency-Key, as a Stripe client does."""
    for _ in range(20):
        try:
            response = httpx.post(
                f"{api}/v1/payment_intents",
                data={
                    "amount": "1000",
                    "currency": "usd",
                    "payment_method": "pm_card_visa",
                    "confirm": "true",
                },
                headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": key},
                timeout=30,
            )
            return response.status_code, response.json()
        except httpx.TransportError:
            time.sleep(0.5)
    raise AssertionError(f"payment {key} never got an answer")


def delivery_state(merchant: Merchant) -> str:
    """What is left, for the failure message."""
    deliveries = WebhookDelivery.objects.filter(merchant_id=merchant.pk)
    by_status = dict(
        deliveries.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    errors = list(
        deliveries.exclude(status=WebhookDelivery.Status.SUCCEEDED)
        .values_list("last_error")
        .annotate(n=Count("id"))
        .order_by("-n")[:5]
    )
    unpublished = OutboxMessage.objects.filter(published_at__isnull=True).count()
    events = Event.objects.filter(merchant=merchant).count()
    return f"events {events}, unpublished {unpublished}, deliveries {by_status}, errors {errors}"


def wait_for_delivery(merchant: Merchant, stack: Stack, stall: float = 90) -> None:
    """Until everything is delivered; fails when nothing more was delivered
    for `stall` seconds (on a shared 2-core box 1,500 deliveries can take
    minutes; what must not happen is that they stop)."""
    delivered = WebhookDelivery.objects.filter(
        merchant_id=merchant.pk, status=WebhookDelivery.Status.SUCCEEDED
    )
    last, progress_at = -1, time.monotonic()

    def done_or_moving() -> bool:
        nonlocal last, progress_at
        if everything_delivered(merchant):
            return True
        count = delivered.count()
        if count > last:
            last, progress_at = count, time.monotonic()
        if time.monotonic() - progress_at > stall:
            raise AssertionError(f"no delivery for {stall:.0f}s")
        return False

    try:
        deadline = time.monotonic() + 1800
        while not done_or_moving():
            if time.monotonic() > deadline:
                raise AssertionError("still delivering after 30 min")
            time.sleep(1)
    except AssertionError as error:
        logs = "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
            for log in sorted(stack.var.glob("*.log"))
        )
        raise AssertionError(f"{error}: {delivery_state(merchant)}\n{logs}") from error


def everything_delivered(merchant: Merchant) -> bool:
    events = Event.objects.filter(merchant=merchant).count()
    return (
        not OutboxMessage.objects.filter(published_at__isnull=True).exists()
        and WebhookDelivery.objects.filter(
            merchant_id=merchant.pk, status=WebhookDelivery.Status.SUCCEEDED
        ).count()
        == events
    )


def run_verify(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "verify"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_killing_the_worker_mid_burst_loses_no_event_and_no_payment(
    stack: Stack, receiver: Receiver
) -> None:
    # given a merchant whose endpoint subscribes to every event
    merchant, secret = merchant_with_endpoint(receiver)
    done = threading.Event()
    answered: list[int] = []

    def pay(i: int) -> tuple[int, dict[str, Any]]:
        result = create_payment(stack.api, secret, f"burst-{i}")
        answered.append(1)
        return result

    def killer() -> None:
        wait_for(lambda: len(answered) >= 150 or done.is_set(), 120, "150 payments")
        stack.kill("worker")  # kill -9, the whole process group
        time.sleep(3)
        stack.start("worker")

    # when 500 payments arrive and the worker is killed a third of the way in
    chaos = threading.Thread(target=killer)
    chaos.start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(pay, range(500)))
    done.set()
    chaos.join()

    # then every payment the API accepted exists
    assert [status for status, _ in results] == [200] * 500
    ids = {body["id"] for _, body in results}
    assert PaymentIntent.objects.filter(merchant=merchant, pk__in=ids).count() == 500
    # and, once the restarted worker caught up, every event reached the receiver
    wait_for_delivery(merchant, stack)
    events = set(Event.objects.filter(merchant=merchant).values_list("pk", flat=True))
    assert events <= set(receiver.ids)
    verify = run_verify(stack)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_redis_stopped_for_30s_means_clean_503s_then_everything_delivered(
    stack: Stack, receiver: Receiver
) -> None:
    # given steady traffic
    merchant, secret = merchant_with_endpoint(receiver)
    stop = threading.Event()
    answers: list[tuple[str, int]] = []

    def traffic() -> None:
        while not stop.is_set():
            key = f"steady-{uuid.uuid4().hex}"
            status, _ = create_payment(stack.api, secret, key)
            answers.append((key, status))
            time.sleep(0.02)

    clients = [threading.Thread(target=traffic) for _ in range(4)]
    for client in clients:
        client.start()
    time.sleep(3)

    # when Redis stops for 30 s, then comes back (empty: no persistence)
    stack.kill("redis", signal.SIGKILL)
    time.sleep(30)
    stack.start("redis")
    time.sleep(5)
    stop.set()
    for client in clients:
        client.join()

    # then the API answered 200 or a clean 503, never anything else
    statuses = {status for _, status in answers}
    assert statuses <= {200, 503}, statuses
    assert 503 in statuses and 200 in statuses
    # and a 503 wrote nothing
    refused = [key for key, status in answers if status == 503]
    assert not Event.objects.filter(idempotency_key__in=refused).exists()
    accepted = [key for key, status in answers if status == 200]
    assert Event.objects.filter(
        idempotency_key__in=accepted, type="payment_intent.created"
    ).count() == len(accepted)
    # and once Redis is back the outbox drains and every event is delivered
    wait_for_delivery(merchant, stack)
    events = set(Event.objects.filter(merchant=merchant).values_list("pk", flat=True))
    assert events <= set(receiver.ids)
    verify = run_verify(stack)
    assert verify.returncode == 0, verify.stdout + verify.stderr
