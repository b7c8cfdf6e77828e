"""Live-feed benchmark (issue 5): commit → websocket latency, and how many feed
clients one daphne process holds.

Starts PayLab in full mode on a fresh PostgreSQL database and a Redis server
of its own: one daphne process and `manage.py relay`. Then:

- `latency`: N websocket clients on `/ws/events/` (staff: every merchant, or
  `--per-merchant K`: merchant users spread over K merchants), while a
  separate generator process commits payments through the domain services at
  R payments/s for T seconds and writes each payment's commit time. For every
  `payment_intent.succeeded` a client receives, latency = receive time -
  commit time (one clock: same machine). Prints p50/p95/p99/max and the
  messages each client got.
- `capacity`: opens idle feed connections in steps up to C, then commits one
  payment and checks that every connection receives it.

    .venv/bin/python bench/events_bench.py latency --clients 100 --rate 200 --seconds 20
    .venv/bin/python bench/events_bench.py capacity --clients 1000

A script, not a test: run it by hand on a quiet box. Needs
BENCH_DATABASE_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres)
and `redis-server` on the PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
DB_NAME = os.environ.get("BENCH_DB_NAME", "paylab_evt_bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


# --- A minimal websocket client (text frames, no extensions) -------------------


class Feed:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, path: str, cookie: str) -> Feed:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
                f"Cookie: sessionid={cookie}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        return cls(reader, writer)

    async def receive_raw(self) -> bytes:
        """The next text frame, undecoded (a hundred clients decoding every
        frame would make this script the bottleneck)."""
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("closed by the server")
            if opcode == 0x1:
                return payload

    async def receive(self) -> dict[str, Any]:
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("closed by the server")
            if opcode == 0x1:
                message: dict[str, Any] = json.loads(payload)
                return message

    def close(self) -> None:
        self.writer.close()


# --- The stack ---------------------------------------------------------------------


class Stack:
    def __init__(self, var: Path) -> None:
        import psycopg

        self.var = var
        self.redis_port, self.web_port = free_port(), free_port()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {DB_NAME}")
        base = ADMIN_URL.rsplit("/", 1)[0]
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PAYLAB_")},
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"{base}/{DB_NAME}",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "PAYLAB_SECRET_KEY": "events-bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "PAYLAB_VAR_DIR": str(var),
            "PAYLAB_LOG_LEVEL": "WARNING",
            "PAYLAB_DB_POOL_MAX": "10",
            # Every payment succeeds at once: this measures the feed.
            "PAYLAB_PROCESSOR_LATENCY": "false",
            "PAYLAB_PROCESSOR_FAULTS": "false",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, *command: str) -> subprocess.Popen[bytes]:
        log = open(self.var / "stack.log", "ab")  # noqa: SIM115 (lives with the process)
        process = subprocess.Popen(  # noqa: S603 — our venv's executables and redis-server
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        return process

    def start(self) -> None:
        self.spawn(
            "redis-server",
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True
        )
        self.spawn(str(BIN / "daphne"), "-p", str(self.web_port), "config.asgi:application")
        self.spawn(sys.executable, "manage.py", "relay", "--poll", "0.5")
        # Both up before anything is measured (on a loaded box Django takes
        # many seconds to import; a relay still starting is a backlog).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.web_port), timeout=0.5).close()
                if b"relay: publishing" in (self.var / "stack.log").read_bytes():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("daphne or the relay did not start")

    def cpu_seconds(self, name: str) -> float:
        """User + system CPU of the stack process whose command mentions `name`."""
        for process in self.processes:
            if name in " ".join(map(str, process.args)):  # type: ignore[arg-type]
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def make_cast(merchants: int) -> dict[str, Any]:
    """Merchants and users; a session cookie for staff and for each merchant."""
    from django.test import Client

    from accounts import services

    def cookie(user: Any) -> str:
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client.cookies["sessionid"].value

    staff = services.user_create(email="bench@paylab.test", password="x" * 20, role="viewer")
    cast: dict[str, Any] = {"staff": cookie(staff), "merchants": []}
    for i in range(merchants):
        merchant, _ = services.merchant_create_with_key(name=f"Bench {i}", slug=f"bench-{i}")
        user = services.user_create(
            email=f"m{i}@bench.test",
            password="x" * 20,
            role="merchant",
            merchant=merchant,
            level="viewer",
        )
        cast["merchants"].append({"id": merchant.pk, "cookie": cookie(user)})
    return cast


# --- Generator (a separate process) ------------------------------------------------


def generate(rate: float, seconds: float, merchant_ids: list[int], out: str, threads: int) -> None:
    """Commit payments at `rate`/s, round-robin over the merchants; write
    "<pi id> <commit time>" lines."""
    import threading

    from accounts.models import Merchant
    from payments.models.intents import CaptureMethod
    from payments.services import intents

    merchants = list(Merchant.objects.filter(pk__in=merchant_ids))
    lines: list[str] = []
    lock = threading.Lock()
    started = time.time() + 0.5
    total = int(rate * seconds)

    def worker(offset: int) -> None:
        from django.db import connection

        for n in range(offset, total, threads):
            due = started + n / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            intent = intents.payment_intent_create(
                merchant=merchants[n % len(merchants)],
                amount=1000,
                currency="usd",
                capture_method=CaptureMethod.AUTOMATIC,
                payment_method="pm_card_visa",
                confirm=True,
            ).intent
            committed = time.time()
            with lock:
                lines.append(f"{intent.pk} {committed:.6f} {committed - due:.6f}")
        connection.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    Path(out).write_text("\n".join(lines) + "\n")


# --- Measurements ------------------------------------------------------------------


# The first payment id in a frame: the intent's own id in a payment_intent.*
# event, the charge's `payment_intent` in a charge.* event (the fields before
# it hold no pi_ id).
PAYMENT_ID = re.compile(rb'"(pi_[0-9A-Za-z]+)"')
EVENT_FRAME = b'{"type":"event","position":'


async def _listen(feed: Feed, received: dict[str, list[float]], counts: list[int]) -> None:
    """Every event of a payment was committed in the payment's one
    transaction: each one received is a latency sample."""
    try:
        while True:
            frame = await feed.receive_raw()
            at = time.time()
            # One event per frame, or several in a `batch` frame.
            for piece in frame.split(EVENT_FRAME)[1:]:
                counts[0] += 1
                found = PAYMENT_ID.search(piece)
                if found:
                    received.setdefault(found.group(1).decode(), []).append(at)
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        return


async def latency(args: argparse.Namespace, stack: Stack, cast: dict[str, Any]) -> dict[str, Any]:
    feeds: list[Feed] = []
    path = "/ws/events/?batch=1" if args.batch else "/ws/events/"
    for i in range(args.clients):
        if args.per_merchant:
            merchant = cast["merchants"][i % len(cast["merchants"])]
            feeds.append(await Feed.open(stack.web_port, path, merchant["cookie"]))
        else:
            feeds.append(await Feed.open(stack.web_port, path, cast["staff"]))
    received: dict[str, list[float]] = {}
    counts = [0]
    listeners = [asyncio.create_task(_listen(f, received, counts)) for f in feeds]
    # Warm up: one payment reaches every client before the clock starts.
    warm = stack.var / "warm.txt"
    await _generate_one(stack, cast["merchants"][0]["id"], warm)
    warm_id = warm.read_text().split()[0]
    expected_warm = len(feeds) // len(cast["merchants"]) if args.per_merchant else len(feeds)
    for _ in range(600):
        if len(received.get(warm_id, [])) >= expected_warm:
            break
        await asyncio.sleep(0.1)
    received.clear()
    counts[0] = 0
    cpu_before = {name: stack.cpu_seconds(name) for name in ("daphne", "relay")}
    client_before = time.process_time()
    outs = [stack.var / f"commits-{g}.txt" for g in range(args.generators)]
    generators = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "generate",
            "--rate",
            str(args.rate / args.generators),
            "--seconds",
            str(args.seconds),
            "--threads",
            str(args.threads),
            "--merchants",
            ",".join(str(m["id"]) for m in cast["merchants"]),
            "--out",
            str(out),
            env=stack.env,
        )
        for out in outs
    ]
    for generator in generators:
        await generator.wait()
    await asyncio.sleep(3)
    cpu = {name: stack.cpu_seconds(name) - cpu_before[name] for name in cpu_before}
    cpu["clients"] = time.process_time() - client_before
    for task in listeners:
        task.cancel()
    for feed in feeds:
        feed.close()
    commits, lateness = {}, []
    for out in outs:
        for row in out.read_text().splitlines():
            pi, at, late = row.split()
            commits[pi] = float(at)
            lateness.append(float(late))
    expected_per_payment = (
        args.clients / len(cast["merchants"]) if args.per_merchant else args.clients
    )
    samples = [
        (t - commits[pi]) * 1000 for pi, times in received.items() if pi in commits for t in times
    ]
    span = max(commits.values()) - min(commits.values())
    relay_lag = await asyncio.to_thread(_relay_lag_ms, commits)
    return {
        "clients": args.clients,
        "per_merchant": args.per_merchant,
        "payments": len(commits),
        "achieved_rate": round(len(commits) / max(span, 1e-9), 1),
        "generator_late_p99_ms": round(percentile(lateness, 0.99) * 1000, 1),
        "payments_seen_per_client": expected_per_payment,
        "batch_frames": args.batch,
        "events_received": counts[0],
        # CPU time, whatever the box's load: what one core could sustain.
        "daphne_cpu_s": round(cpu["daphne"], 2),
        "daphne_cpu_us_per_event_sent": round(cpu["daphne"] / max(counts[0], 1) * 1e6, 1),
        "clients_cpu_s": round(cpu["clients"], 2),
        "relay_cpu_ms_per_payment": round(cpu["relay"] / max(len(commits), 1) * 1e3, 2),
        # commit → the relay's publication (outbox published_at), per payment
        "relay_lag_p50_ms": round(percentile(relay_lag, 0.50), 1),
        "relay_lag_p99_ms": round(percentile(relay_lag, 0.99), 1),
        "latency_samples": len(samples),
        "p50_ms": round(percentile(samples, 0.50), 1),
        "p95_ms": round(percentile(samples, 0.95), 1),
        "p99_ms": round(percentile(samples, 0.99), 1),
        "max_ms": round(max(samples), 1),
    }


def _relay_lag_ms(commits: dict[str, float]) -> list[float]:
    from django.db import connection
    from django.db.models import Max

    from payments.models import OutboxMessage

    published = dict(
        OutboxMessage.objects.filter(event__payment_intent_id__in=list(commits))
        .values("event__payment_intent_id")
        .annotate(at=Max("published_at"))
        .values_list("event__payment_intent_id", "at")
    )
    connection.close()
    return [(at.timestamp() - commits[pi]) * 1000 for pi, at in published.items() if at]


async def _generate_one(stack: Stack, merchant_id: int, out: Path) -> None:
    generator = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "generate",
        "--rate",
        "1",
        "--seconds",
        "1",
        "--threads",
        "1",
        "--merchants",
        str(merchant_id),
        "--out",
        str(out),
        env=stack.env,
    )
    await generator.wait()


async def capacity(args: argparse.Namespace, stack: Stack, cast: dict[str, Any]) -> dict[str, Any]:
    feeds: list[Feed] = []
    failures = 0
    opened_at = time.monotonic()
    for i in range(args.clients):
        try:
            feeds.append(await Feed.open(stack.web_port, "/ws/events/", cast["staff"]))
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            failures += 1
        if i % 200 == 199:
            print(f"  {len(feeds)} open, {failures} refused", flush=True)
    opened = time.monotonic() - opened_at
    out = stack.var / "one.txt"
    await asyncio.sleep(1)

    async def first_success(feed: Feed) -> float:
        while True:
            message = await feed.receive()
            if message["event"]["type"] == "payment_intent.succeeded":
                return time.time()

    waits = [asyncio.create_task(first_success(f)) for f in feeds]
    generator = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "generate",
        "--rate",
        "1",
        "--seconds",
        "1",
        "--threads",
        "1",
        "--merchants",
        str(cast["merchants"][0]["id"]),
        "--out",
        str(out),
        env=stack.env,
    )
    await generator.wait()
    done, pending = await asyncio.wait(waits, timeout=30)
    committed = float(out.read_text().split()[1])
    fanout = [(t.result() - committed) * 1000 for t in done if not t.exception()]
    for task in pending:
        task.cancel()
    rss_kb = 0
    for process in stack.processes:
        if "daphne" in " ".join(map(str, process.args)):  # type: ignore[arg-type]
            status = Path(f"/proc/{process.pid}/status").read_text()
            rss_kb = int(
                next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]
            )
    for feed in feeds:
        feed.close()
    return {
        "clients_asked": args.clients,
        "connected": len(feeds),
        "refused": failures,
        "open_seconds": round(opened, 1),
        "received_the_broadcast": len(fanout),
        "fanout_p50_ms": round(percentile(fanout, 0.5), 1) if fanout else None,
        "fanout_max_ms": round(max(fanout), 1) if fanout else None,
        "daphne_rss_mb": round(rss_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["latency", "capacity", "generate"])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=4, help="threads per generator process")
    parser.add_argument(
        "--generators", type=int, default=2, help="generator processes sharing --rate"
    )
    parser.add_argument(
        "--per-merchant",
        type=int,
        default=0,
        help="K: clients are merchant users spread over K merchants (0: staff, every event)",
    )
    parser.add_argument(
        "--batch", action="store_true", help="clients ask for batch frames (?batch=1)"
    )
    parser.add_argument("--merchants", default="")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.mode == "generate":
        setup_django({})
        generate(
            args.rate,
            args.seconds,
            [int(m) for m in args.merchants.split(",")],
            args.out,
            args.threads,
        )
        return
    with tempfile.TemporaryDirectory(prefix="paylab-events-bench-") as var:
        stack = Stack(Path(var))
        try:
            stack.start()
            setup_django(stack.env)
            cast = make_cast(max(args.per_merchant, 1))
            run = latency if args.mode == "latency" else capacity
            result = asyncio.run(run(args, stack, cast))
            print(json.dumps(result, indent=2))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
