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


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (independent of load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
            if opcode == 0x9:
                self.pong(payload)
            if opcode == 0x1:
                return payload

    def pong(self, payload: bytes) -> None:
        """Answer daphne's keep-alive ping (else it closes the connection
        after ping_interval + ping_timeout, 50 s): a masked pong frame."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)

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
            if opcode == 0x9:
                self.pong(payload)
            if opcode == 0x1:
                message: dict[str, Any] = json.loads(payload)
                return message

    def close(self) -> None:
        self.writer.close()


# --- The stack ---------------------------------------------------------------------


class Stack:
    def __init__(self, var: Path, daphnes: int = 1) -> None:
        self.linger = 0.0
        import psycopg

        self.var = var
        self.redis_port = free_port()
        self.web_ports = [free_port() for _ in range(daphnes)]
        self.web_port = self.web_ports[0]
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

    def start(self, *, web: bool = True) -> None:
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
        if not web:  # Redis and the database only (`relay-cpu`)
            return
        linger = self.linger
        for port in self.web_ports:
            self.spawn(str(BIN / "daphne"), "-p", str(port), "config.asgi:application")
        self.spawn(sys.executable, "manage.py", "relay", "--poll", "0.5", "--linger", str(linger))
        # Both up before anything is measured (on a loaded box Django takes
        # many seconds to import; a relay still starting is a backlog).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                for port in self.web_ports:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                if b"relay: publishing" in (self.var / "stack.log").read_bytes():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("daphne or the relay did not start")

    def cpu_seconds(self, name: str) -> float:
        """User + system CPU of the stack processes whose command mentions `name`."""
        total = 0.0
        for process in self.processes:
            if name in " ".join(map(str, process.args)):  # type: ignore[arg-type]
                total += proc_cpu_seconds(process.pid)
        return total

    def redis_stats(self) -> dict[str, int]:
        """The script's own Redis server's counters (INFO): the pipeline's
        traffic and commands, nothing else uses that server."""
        import redis

        client = redis.Redis(port=self.redis_port)
        info = {**client.info("stats"), **client.info("cpu")}
        client.close()
        return {
            "in_bytes": int(info["total_net_input_bytes"]),
            "out_bytes": int(info["total_net_output_bytes"]),
            "commands": int(info["total_commands_processed"]),
            "cpu_us": int((info["used_cpu_sys"] + info["used_cpu_user"]) * 1e6),
        }

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


def generate(
    rate: float, seconds: float, merchant_ids: list[int], out: str, threads: int, kind: str
) -> None:
    """Commit payments at `rate`/s, round-robin over the merchants; write
    "<pi id> <commit time> <lateness>" lines, and the process's CPU seconds
    while generating to `<out>.cpu`. `kind`: "services" (the domain
    services: create + confirm + automatic capture, `threads` threads) or
    "replay" (the rows the services write, replayed; see `_replayer` and
    `_generate_replayed`)."""
    import threading

    from django.db import connection

    if kind == "replay":
        _generate_replayed(rate, seconds, merchant_ids, out)
        return
    pay = _services_payer(merchant_ids)
    lines: list[str] = []
    lock = threading.Lock()
    started = time.time() + 0.5
    total = int(rate * seconds)
    cpu_before = time.process_time()

    def worker(offset: int) -> None:
        for n in range(offset, total, threads):
            due = started + n / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            payment_id = pay(n)
            committed = time.time()
            with lock:
                lines.append(f"{payment_id} {committed:.6f} {committed - due:.6f}")
        connection.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    Path(out).write_text("\n".join(lines) + "\n")
    Path(out + ".cpu").write_text(f"{time.process_time() - cpu_before:.3f}\n")


def _generate_replayed(rate: float, seconds: float, merchant_ids: list[int], out: str) -> None:
    """The replay generator's pacing: one thread, waking every TICK; the
    payments due by then are committed in one transaction (one COPY per
    table), each stamped with that commit's time, then one nudge. At 200/s
    a tick holds one payment or two; what it saves is the per-transaction
    round trips a thread per payment would pay on a 2-core box."""
    from django.db import connection

    write = _replayer(merchant_ids)
    lines: list[str] = []
    total = int(rate * seconds)
    started = time.time() + 0.5
    cpu_before = time.process_time()
    n = 0
    while n < total:
        now = time.time()
        due = min(total, int((now - started) * rate) + 1)
        if due <= n:
            time.sleep(max(0.0, started + n / rate - now, TICK))
            continue
        batch = range(n, due)
        payment_ids = write(batch)
        committed = time.time()
        for k, payment_id in zip(batch, payment_ids, strict=True):
            lines.append(f"{payment_id} {committed:.6f} {committed - (started + k / rate):.6f}")
        n = due
    connection.close()
    Path(out).write_text("\n".join(lines) + "\n")
    Path(out + ".cpu").write_text(f"{time.process_time() - cpu_before:.3f}\n")


TICK = 0.002


def _services_payer(merchant_ids: list[int]) -> Any:
    from accounts.models import Merchant
    from payments.models.intents import CaptureMethod
    from payments.services import intents

    merchants = list(Merchant.objects.filter(pk__in=merchant_ids))

    def pay(n: int) -> str:
        return intents.payment_intent_create(
            merchant=merchants[n % len(merchants)],
            amount=1000,
            currency="usd",
            capture_method=CaptureMethod.AUTOMATIC,
            payment_method="pm_card_visa",
            confirm=True,
        ).intent.pk

    return pay


def _replayer(merchant_ids: list[int]) -> Any:
    """Commit exactly the rows the services write for a paid Visa payment —
    payment method, intent, charge, ledger, 3 events with their snapshots,
    3 outbox rows — as simulator.seeding records them (the services run once,
    rolled back, and the rows become templates), but with the outbox rows
    *unpublished*, so the relay publishes them as it would the services'.
    One transaction per call (COPY per table), then the nudge the services
    send after commit. What it skips is the services' Python
    (state machine, routing, ORM): the pipeline after the commit is the
    same, and the generator no longer takes the cores the pipeline needs."""
    import random

    from django.db import transaction

    from accounts.models import Merchant
    from payments.models import OutboxMessage
    from payments.services import outbox
    from simulator import seeding

    shape = seeding.build_shape(Merchant.objects.get(pk=merchant_ids[0]), "paid_visa", "usd")
    fields = [f.attname for f in seeding._columns(OutboxMessage)]
    news = {
        "published_at": seeding.ColumnTemplate(pg="\\N", sqlite="", null=True),
        "claimed_by": seeding.ColumnTemplate(pg="", sqlite=""),
        "claimed_until": seeding.ColumnTemplate(pg="\\N", sqlite="", null=True),
        "attempts": seeding.ColumnTemplate(pg="0", sqlite="0"),
        "position": seeding.ColumnTemplate(pg="\\N", sqlite="", null=True),
    }
    for template in shape.rows:
        if template.model is OutboxMessage:
            for name, column in news.items():
                template.columns[fields.index(name)] = column
    seeding._compile(shape)
    id_maker, rng = seeding._Ids(), random.Random(0)

    def write(numbers: range) -> list[str]:
        """Commit payments `numbers` (one transaction); their ids."""
        at = time.time()
        filled = [
            seeding._values(
                shape, rng, id_maker, [at], seeding._pg_time, merchant_ids[n % len(merchant_ids)]
            )
            for n in numbers
        ]
        with transaction.atomic():
            for model, lines, _ in shape.copy_lines:
                seeding._write(model, [lines.format_map(values) for values in filled], True)
        outbox.nudge()
        return [str(values["pi"]) for values in filled]

    return write


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
            counts[1] += 1
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
        port = stack.web_ports[i % len(stack.web_ports)]
        if args.per_merchant:
            merchant = cast["merchants"][i % len(cast["merchants"])]
            feeds.append(await Feed.open(port, path, merchant["cookie"]))
        else:
            feeds.append(await Feed.open(port, path, cast["staff"]))
    received: dict[str, list[float]] = {}
    counts = [0, 0]  # events, websocket frames
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
    counts[0] = counts[1] = 0
    load_before = os.getloadavg()
    cpu_before = {name: stack.cpu_seconds(name) for name in ("daphne", "relay")}
    redis_before = stack.redis_stats()
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
            "--generator",
            args.generator,
            env=stack.env,
        )
        for out in outs
    ]
    for generator in generators:
        await generator.wait()
    await asyncio.sleep(3)
    cpu = {name: stack.cpu_seconds(name) - cpu_before[name] for name in cpu_before}
    cpu["clients"] = time.process_time() - client_before
    redis_after = stack.redis_stats()
    redis_used = {k: redis_after[k] - redis_before[k] for k in redis_before}
    for task in listeners:
        task.cancel()
    for feed in feeds:
        feed.close()
    load_after = os.getloadavg()
    generator_cpu = sum(float(Path(f"{out}.cpu").read_text()) for out in outs)
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
    start = min(commits.values())
    by_second: dict[int, list[float]] = {}
    spread = []  # per payment: first client's receipt → last client's
    for pi, times in received.items():
        if pi in commits:
            by_second.setdefault(int(commits[pi] - start), []).extend(
                (t - commits[pi]) * 1000 for t in times
            )
            spread.append((max(times) - min(times)) * 1000)
    relay_lag = await asyncio.to_thread(_relay_lag_ms, commits)
    return {
        "load_avg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "generator": args.generator,
        "daphnes": args.daphnes,
        "relay_linger_s": args.linger,
        "clients": args.clients,
        "per_merchant": args.per_merchant,
        "payments": len(commits),
        "achieved_rate": round(len(commits) / max(span, 1e-9), 1),
        "generator_late_p99_ms": round(percentile(lateness, 0.99) * 1000, 1),
        "payments_seen_per_client": expected_per_payment,
        "batch_frames": args.batch,
        "events_received": counts[0],
        "frames_received": counts[1],
        # CPU time, whatever the box's load: what one core could sustain.
        "daphne_cpu_s": round(cpu["daphne"], 2),
        "daphne_cpu_us_per_event_sent": round(cpu["daphne"] / max(counts[0], 1) * 1e6, 1),
        "daphne_cpu_us_per_frame_sent": round(cpu["daphne"] / max(counts[1], 1) * 1e6, 1),
        "daphne_cores_busy": round(cpu["daphne"] / max(span, 1e-9), 2),
        "generator_cpu_ms_per_payment": round(generator_cpu / max(len(commits), 1) * 1e3, 2),
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
        # Where the tail comes from: p99 per second of the run (a queue that
        # grows shows as a ramp) and the spread of one payment over the clients.
        "p99_ms_by_second": [round(percentile(by_second[k], 0.99)) for k in sorted(by_second)],
        "client_spread_p50_p99_ms": [
            round(percentile(spread, 0.50), 1),
            round(percentile(spread, 0.99), 1),
        ],
        # Redis: everything the relay, the daphnes and the generator sent it
        # and got back over the run, per payment (the pushes dominate).
        "redis_in_kb_per_payment": round(redis_used["in_bytes"] / max(len(commits), 1) / 1e3, 2),
        "redis_out_kb_per_payment": round(redis_used["out_bytes"] / max(len(commits), 1) / 1e3, 2),
        "redis_commands_per_payment": round(redis_used["commands"] / max(len(commits), 1), 1),
        "redis_cpu_ms_per_payment": round(redis_used["cpu_us"] / max(len(commits), 1) / 1e3, 3),
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


async def fanout(args: argparse.Namespace, stack: Stack, cast: dict[str, Any]) -> dict[str, Any]:
    """daphne's own cost per event and per frame, whatever the box's load:
    `--clients` staff feeds (`--batch`: batch frames), then `--messages`
    pushes of `--batch-size` events each, sent from this process through
    the channel layer as the relay sends them (`outbox._push`; each event a
    real payment's frame), paced every 20 ms; the daphne processes' CPU from
    /proc over the run, once every client has every event."""
    from payments.services import outbox

    path = "/ws/events/?batch=1" if args.batch else "/ws/events/"
    feeds = [
        await Feed.open(stack.web_ports[i % len(stack.web_ports)], path, cast["staff"])
        for i in range(args.clients)
    ]
    received: dict[str, list[float]] = {}
    counts = [0, 0]
    listeners = [asyncio.create_task(_listen(f, received, counts)) for f in feeds]
    warm = stack.var / "warm.txt"
    await _generate_one(stack, cast["merchants"][0]["id"], warm)
    while counts[0] < 3 * len(feeds):
        await asyncio.sleep(0.1)
    real = await asyncio.to_thread(_a_real_frame)
    counts[0] = counts[1] = 0
    before = stack.cpu_seconds("daphne")
    position = 10**9
    for _ in range(args.messages):
        items = []
        for _ in range(args.batch_size):
            position += 1
            items.append({**real, "position": position, "event_id": f"evt_fanout{position}"})
        await asyncio.to_thread(outbox._push, items)
        await asyncio.sleep(0.02)
    expected = args.messages * args.batch_size * len(feeds)
    for _ in range(1200):
        if counts[0] >= expected:
            break
        await asyncio.sleep(0.05)
    cpu = stack.cpu_seconds("daphne") - before
    for task in listeners:
        task.cancel()
    for feed in feeds:
        feed.close()
    return {
        "clients": len(feeds),
        "daphnes": len(stack.web_ports),
        "batch_frames": args.batch,
        "events_per_push": args.batch_size,
        "events_expected": expected,
        "events_received": counts[0],
        "frames_received": counts[1],
        "daphne_cpu_s": round(cpu, 2),
        "daphne_cpu_us_per_event_sent": round(cpu / max(counts[0], 1) * 1e6, 2),
        "daphne_cpu_us_per_frame_sent": round(cpu / max(counts[1], 1) * 1e6, 2),
        "frame_bytes": len(real["frame"]),
    }


def _a_real_frame() -> dict[str, Any]:
    from django.db import connection

    from payments.models import Event
    from payments.services import outbox

    event = Event.objects.filter(type="charge.succeeded").first()
    assert event is not None
    item = outbox.push_item(event, 0)
    connection.close()
    return item


def relay_cpu(args: argparse.Namespace, cast: dict[str, Any]) -> dict[str, Any]:
    """The relay's own cost, whatever the box's load: commit `--payments`
    payments (the replay generator's rows, outbox unpublished), then publish
    them in this process with `payments.services.outbox.outbox_publish`,
    `--batch-size` rows at a time, and report its CPU time and SQL statements
    per payment. One channel listens on `events.all` (drained after each
    batch), so the push is the live one: every group's message is sent to
    Redis, the staff feed's delivered."""
    from channels.layers import get_channel_layer
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from payments.services import outbox

    merchant_ids = [m["id"] for m in cast["merchants"]]
    write = _replayer(merchant_ids)
    for n in range(args.payments):
        write(range(n, n + 1))
    layer: Any = get_channel_layer()
    push_loop = outbox._push_loop()
    listener = asyncio.run_coroutine_threadsafe(layer.new_channel(), push_loop).result()
    asyncio.run_coroutine_threadsafe(
        layer.group_add(outbox.ALL_GROUP, listener), push_loop
    ).result()

    async def drain() -> int:
        received = 0
        while True:
            try:
                await asyncio.wait_for(layer.receive(listener), 0.05)
                received += 1
            except TimeoutError:
                return received

    cpu = 0.0
    statements = published = messages = batches = 0
    while True:
        with CaptureQueriesContext(connection) as queries:
            started = time.process_time()
            count = outbox.outbox_publish(
                relay="bench", limit=args.batch_size, on_deliveries=lambda _: None
            ).count
            cpu += time.process_time() - started
        if not count:
            break
        batches += 1
        published += count
        statements += len(queries)
        messages += asyncio.run_coroutine_threadsafe(drain(), push_loop).result()
    events_per_payment = published / max(args.payments, 1)
    return {
        "payments": args.payments,
        "events": published,
        "batch_size_rows": args.batch_size,
        "batches": batches,
        "relay_cpu_ms_per_payment": round(cpu / max(args.payments, 1) * 1e3, 3),
        "relay_cpu_us_per_event": round(cpu / max(published, 1) * 1e6, 1),
        "sql_statements_per_batch": round(statements / max(batches, 1), 2),
        "events_per_payment": round(events_per_payment, 2),
        "staff_feed_messages_received": messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["latency", "capacity", "fanout", "relay-cpu", "generate"])
    parser.add_argument("--messages", type=int, default=300, help="fanout: pushes")
    parser.add_argument("--payments", type=int, default=2000, help="relay-cpu: payments")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=200,
        help="relay-cpu: outbox rows per relay batch; fanout: events per push",
    )
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
    parser.add_argument(
        "--generator",
        choices=["services", "replay"],
        default="services",
        help="services: payments through the domain services; replay: the rows they "
        "write, replayed (simulator.seeding's recorded shape, outbox unpublished)",
    )
    parser.add_argument(
        "--daphnes", type=int, default=1, help="daphne processes; clients spread over them"
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=0.01,
        help="the relay's --linger: seconds it waits after a nudge, batching that window "
        "(default 0.01, the relay's own default: PAYLAB_RELAY_LINGER_SECONDS)",
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
            args.generator,
        )
        return
    with tempfile.TemporaryDirectory(prefix="paylab-events-bench-") as var:
        stack = Stack(Path(var), daphnes=args.daphnes)
        stack.linger = args.linger
        try:
            stack.start(web=args.mode != "relay-cpu")
            setup_django(stack.env)
            cast = make_cast(max(args.per_merchant, 1))
            if args.mode == "relay-cpu":
                print(json.dumps(relay_cpu(args, cast), indent=2))
                return
            run = {"latency": latency, "capacity": capacity, "fanout": fanout}[args.mode]
            result = asyncio.run(run(args, stack, cast))
            print(json.dumps(result, indent=2))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
