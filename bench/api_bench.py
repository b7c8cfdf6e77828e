"""Merchant API benchmark (issue 3): confirmed payments per second over HTTP.

Starts PayLab in full mode (a fresh PostgreSQL database, Redis, the real
server), drives it with N keep-alive clients for T seconds after a warm-up,
and prints payments/s and p50/p95/p99 latency; with `--compare localstripe`
it drives the same load against localstripe, an in-memory fake Stripe
installed only for this script in its own virtualenv.

    .venv/bin/python bench/api_bench.py --server gunicorn --scenario confirm
    .venv/bin/python bench/api_bench.py --server daphne --server gunicorn \
        --scenario confirm --scenario manual --compare localstripe --json

Scenarios:
- `confirm`: POST /v1/payment_intents amount=2000 currency=usd confirm=true
  payment_method=pm_card_visa, form-encoded, the key as the Basic user (what
  the `stripe` library sends); one request per payment.
- `manual`: the same with capture_method=manual, then POST …/capture, then
  POST /v1/refunds payment_intent=… amount=500; three requests per payment,
  latency reported per step.
- `healthz`: GET /healthz, the server's ceiling on a trivial request.

`--calibrate` measures the load generator alone against a canned-response
server, to show the client is not what limits the numbers. `--profile`
records the gunicorn workers with py-spy during the measured window and
prints where the CPU time goes.

This is a script, not a test: run it by hand (`make bench`) on a quiet box.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
VENV_BIN = Path(sys.executable).parent
LOCALSTRIPE_VENV = BENCH_DIR / "localstripe-venv"
# localstripe pickles its whole store to this fixed path after every write.
LOCALSTRIPE_STORE = Path("/tmp/localstripe.pickle")  # noqa: S108
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# --- A lean HTTP/1.1 client ----------------------------------------------------
#
# asyncio streams and hand-built requests: a few tens of microseconds of CPU per
# request, so on a 2-core box the generator takes as little as possible from the
# server it measures. Keep-alive where the server offers it; gunicorn's sync
# workers close every connection, so it reconnects (as any client would).


class HttpError(Exception):
    pass


class HttpConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reused = False

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.reused = False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one prepared request; (status, body).

        Retried once only when a reused keep-alive connection turns out to
        be closed before any byte of an answer came back — the server never
        saw the request, so a POST is not sent twice.
        """
        for attempt in (0, 1):
            if self.writer is None:
                await self._connect()
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError) as error:
                stale = self.reused and (
                    not isinstance(error, asyncio.IncompleteReadError) or not error.partial
                )
                self.close()
                if stale and attempt == 0:
                    continue
                raise HttpError(type(error).__name__) from None
            status, body, keep = await self._read_rest(head)
            if keep:
                self.reused = True
            else:
                self.close()
            return status, body
        raise HttpError("unreachable")

    async def _read_rest(self, head: bytes) -> tuple[int, bytes, bool]:
        assert self.reader is not None
        lines = head.split(b"\r\n")
        status_line = lines[0]
        status = int(status_line[9:12])
        keep = status_line.startswith(b"HTTP/1.1")
        length = -1
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = value.strip().lower() == b"keep-alive" or (
                    keep and value.strip().lower() != b"close"
                )
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size + 2))
            return status, b"".join(p[:-2] for p in parts), keep
        if length >= 0:
            return status, await self.reader.readexactly(length), keep
        return status, await self.reader.read(), False


def build_request(
    target: Target, method: str, path: str, form: dict[str, str] | None, idempotency: bool
) -> bytes:
    body = urllib.parse.urlencode(form).encode() if form is not None else b""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {target.host}:{target.port}",
        "User-Agent: paylab-bench",
        "Accept: */*",
    ]
    if target.secret:
        token = base64.b64encode(f"{target.secret}:".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    if method == "POST":
        lines.append("Content-Type: application/x-www-form-urlencoded")
        lines.append(f"Content-Length: {len(body)}")
        if idempotency:
            lines.append(f"Idempotency-Key: {uuid.uuid4()}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- Load generation -----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    secret: str


@dataclass(frozen=True)
class LoadSpec:
    target: Target
    scenario: str
    clients: int
    start_at: float  # time.monotonic(): the clock is system-wide on Linux
    measure_from: float
    measure_until: float
    idempotency: bool


@dataclass
class Recorder:
    """What one generator process saw inside the measured window."""

    measure_from: float
    measure_until: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    payments: int = 0
    per_second: Counter[int] = field(default_factory=Counter)

    def in_window(self, at: float) -> bool:
        return self.measure_from <= at <= self.measure_until

    def request(self, step: str, started: float, ended: float, outcome: str) -> None:
        if self.in_window(ended):
            self.statuses[outcome] += 1
            if outcome == "ok":
                self.latencies[step].append((ended - started) * 1000)

    def payment(self, at: float) -> None:
        if self.in_window(at):
            self.payments += 1
            self.per_second[int(at - self.measure_from)] += 1


async def _call(
    connection: HttpConnection, recorder: Recorder, step: str, raw: bytes, expect: int = 200
) -> bytes | None:
    started = time.monotonic()
    try:
        status, body = await connection.request(raw)
    except (HttpError, OSError) as error:
        recorder.request(step, started, time.monotonic(), f"{step}:{type(error).__name__}")
        await asyncio.sleep(0.01)
        return None
    ended = time.monotonic()
    recorder.request(step, started, ended, "ok" if status == expect else f"{step}:{status}")
    return body if status == expect else None


async def _client(spec: LoadSpec, recorder: Recorder) -> None:
    target = spec.target
    connection = HttpConnection(target.host, target.port)
    payment_form = {
        "amount": "2000",
        "currency": "usd",
        "confirm": "true",
        "payment_method": "pm_card_visa",
    }
    manual_form = {**payment_form, "capture_method": "manual"}
    healthz = build_request(target, "GET", "/healthz", None, False)
    await asyncio.sleep(max(0.0, spec.start_at - time.monotonic()))
    try:
        while time.monotonic() < spec.measure_until:
            if spec.scenario == "healthz":
                if await _call(connection, recorder, "healthz", healthz) is not None:
                    recorder.payment(time.monotonic())
                continue
            if spec.scenario == "confirm":
                raw = build_request(
                    target, "POST", "/v1/payment_intents", payment_form, spec.idempotency
                )
                body = await _call(connection, recorder, "confirm", raw)
                if body is not None and json.loads(body)["status"] == "succeeded":
                    recorder.payment(time.monotonic())
                continue
            raw = build_request(
                target, "POST", "/v1/payment_intents", manual_form, spec.idempotency
            )
            body = await _call(connection, recorder, "create+confirm", raw)
            if body is None:
                continue
            intent = json.loads(body)["id"]
            raw = build_request(
                target, "POST", f"/v1/payment_intents/{intent}/capture", {}, spec.idempotency
            )
            if await _call(connection, recorder, "capture", raw) is None:
                continue
            refund = {"payment_intent": intent, "amount": "500"}
            raw = build_request(target, "POST", "/v1/refunds", refund, spec.idempotency)
            if await _call(connection, recorder, "refund", raw) is not None:
                recorder.payment(time.monotonic())
    finally:
        connection.close()


async def _generate(spec: LoadSpec) -> Recorder:
    recorder = Recorder(spec.measure_from, spec.measure_until)
    await asyncio.gather(*(_client(spec, recorder) for _ in range(spec.clients)))
    return recorder


def _generator_process(spec: LoadSpec, pipe: Connection) -> None:
    recorder = asyncio.run(_generate(spec))
    pipe.send(
        {
            "latencies": dict(recorder.latencies),
            "statuses": dict(recorder.statuses),
            "payments": recorder.payments,
            "per_second": dict(recorder.per_second),
        }
    )
    pipe.close()


# --- CPU accounting from /proc -------------------------------------------------


def _proc_stats() -> dict[int, tuple[str, int, int, str]]:
    """pid → (comm, process group, CPU ticks, cmdline) for every process."""
    found: dict[int, tuple[str, int, int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                raw = handle.read().decode(errors="replace")
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        found[int(entry.name)] = (comm, int(rest[2]), int(rest[11]) + int(rest[12]), cmdline)
    return found


def _machine_busy() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class CpuSnapshot:
    procs: dict[int, tuple[str, int, int, str]]
    busy: int
    total: int

    @classmethod
    def take(cls) -> CpuSnapshot:
        busy, total = _machine_busy()
        return cls(_proc_stats(), busy, total)


def cpu_split(
    before: CpuSnapshot,
    after: CpuSnapshot,
    *,
    server_group: int | None,
    server_pids: set[int],
    generators: list[int],
    database: str | None,
    seconds: float,
) -> dict[str, float]:
    """Cores used over the window: the server, PostgreSQL, the generator, the rest."""

    def ticks(pid: int) -> int:
        now = after.procs[pid][2]
        return now - before.procs[pid][2] if pid in before.procs else now

    server = postgres = postgres_bench = generator = 0
    for pid, (comm, group, _, cmdline) in after.procs.items():
        if (server_group is not None and group == server_group) or pid in server_pids:
            server += ticks(pid)
        elif pid in generators:
            generator += ticks(pid)
        elif comm == "postgres":
            postgres += ticks(pid)
            if database and f" {database} " in cmdline:
                postgres_bench += ticks(pid)
    busy = after.busy - before.busy
    scale = 1 / (CLOCK_TICKS * seconds)
    cores = (after.total - before.total) / (CLOCK_TICKS * seconds)
    return {
        "machine_busy": round(busy * scale / cores * (os.cpu_count() or 1), 2),
        "server": round(server * scale, 2),
        "postgres": round(postgres * scale, 2),
        "postgres_bench_backends": round(postgres_bench * scale, 2),
        "generator": round(generator * scale, 2),
        "other": round(
            max(0.0, busy * scale / cores * (os.cpu_count() or 1))
            - (server + postgres + generator) * scale,
            2,
        ),
    }


# --- Running one measurement ---------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def latency_summary(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 0.50), 2),
        "p95": round(percentile(ordered, 0.95), 2),
        "p99": round(percentile(ordered, 0.99), 2),
        "max": round(ordered[-1], 2) if ordered else float("nan"),
    }


@dataclass
class Measurement:
    spec_target: str
    scenario: str
    clients: int
    duration: float
    generators: int
    idempotency: bool
    payments: int
    statuses: dict[str, int]
    latencies: dict[str, list[float]]
    per_second: list[int]
    cpu: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        ok = self.statuses.get("ok", 0)
        every = [v for values in self.latencies.values() for v in values]
        return {
            "target": self.spec_target,
            "scenario": self.scenario,
            "clients": self.clients,
            "duration_s": self.duration,
            "generators": self.generators,
            "idempotency_keys": self.idempotency,
            "payments": self.payments,
            "payments_per_s": round(self.payments / self.duration, 1),
            "requests_ok": ok,
            "requests_per_s": round(ok / self.duration, 1),
            "errors": {k: v for k, v in sorted(self.statuses.items()) if k != "ok"},
            "latency_ms": latency_summary(every),
            "latency_ms_by_step": (
                {step: latency_summary(values) for step, values in self.latencies.items()}
                if len(self.latencies) > 1
                else {}
            ),
            "payments_per_second_timeline": self.per_second,
            "cpu_cores": self.cpu,
            # The budget that decides throughput on a small box: at 1,000
            # payments/s two cores leave 2 ms of CPU per payment for everything.
            "cpu_ms_per_payment": {
                name: round(cores * 1000 * self.duration / self.payments, 2)
                for name, cores in self.cpu.items()
                if name in ("server", "postgres", "generator")
            }
            if self.payments
            else {},
            "notes": self.notes,
        }


def measure(
    target: Target,
    scenario: str,
    *,
    clients: int,
    duration: float,
    warmup: float,
    generators: int,
    idempotency: bool,
    server_group: int | None,
    database: str | None,
    server_pids: set[int] | None = None,
    on_window_start: Any = None,
) -> Measurement:
    start_at = time.monotonic() + 1.0  # let every generator process start first
    measure_from = start_at + warmup
    measure_until = measure_from + duration
    context = multiprocessing.get_context("fork")
    processes = []
    pipes = []
    for index in range(generators):
        share = clients // generators + (1 if index < clients % generators else 0)
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_generator_process,
            args=(
                LoadSpec(
                    target=target,
                    scenario=scenario,
                    clients=share,
                    start_at=start_at,
                    measure_from=measure_from,
                    measure_until=measure_until,
                    idempotency=idempotency,
                ),
                send,
            ),
            daemon=True,
        )
        process.start()
        send.close()
        processes.append(process)
        pipes.append(receive)
    time.sleep(max(0.0, measure_from - time.monotonic()))
    extra = on_window_start() if on_window_start is not None else None
    before = CpuSnapshot.take()
    time.sleep(max(0.0, measure_until - time.monotonic()))
    after = CpuSnapshot.take()
    results = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join(timeout=30)
    cpu = cpu_split(
        before,
        after,
        server_group=server_group,
        server_pids=server_pids or set(),
        generators=[p.pid for p in processes if p.pid is not None],
        database=database,
        seconds=duration,
    )
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    per_second: Counter[int] = Counter()
    payments = 0
    for result in results:
        for step, values in result["latencies"].items():
            latencies[step].extend(values)
        statuses.update(result["statuses"])
        per_second.update(result["per_second"])
        payments += result["payments"]
    measurement = Measurement(
        spec_target=target.name,
        scenario=scenario,
        clients=clients,
        duration=duration,
        generators=generators,
        idempotency=idempotency,
        payments=payments,
        statuses=dict(statuses),
        latencies=dict(latencies),
        per_second=[per_second.get(s, 0) for s in range(int(duration))],
        cpu=cpu,
    )
    if extra is not None:
        measurement.notes.append(str(extra))
    return measurement


# --- PayLab in full mode -------------------------------------------------------


@dataclass
class PayLab:
    admin_url: str
    database: str
    redis_url: str
    port: int
    rate_limit: int
    log_level: str
    source: Path = ROOT
    source_note: str = "working tree"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        parts = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{self.database}"))

    @property
    def template(self) -> str:
        return f"{self.database}_template"

    def server_env(self) -> dict[str, str]:
        if not self.env:
            inherited = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith("PAYLAB_") and k not in {"DATABASE_URL", "REDIS_URL"}
            }
            self.env = {
                **inherited,
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "PAYLAB_SECRET_KEY": secrets.token_urlsafe(50),
                "PAYLAB_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "PAYLAB_LOG_LEVEL": self.log_level,
                "PAYLAB_RATE_LIMIT": str(self.rate_limit),
                "PAYLAB_VAR_DIR": str(BENCH_DIR / "paylab-var"),
                "PYTHONPATH": str(self.source),
                "PYTHONUNBUFFERED": "1",
            }
        return self.env

    def _admin(self, *statements: sql.Composed) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def _manage(self, *args: str, database: str | None = None) -> str:
        env = dict(self.server_env())
        if database is not None:
            parts = urllib.parse.urlsplit(self.admin_url)
            env["DATABASE_URL"] = urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))
        done = subprocess.run(  # noqa: S603 — our own interpreter and manage.py
            [sys.executable, str(self.source / "manage.py"), *args],
            cwd=self.source,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def prepare_template(self) -> None:
        """A migrated, empty database every run is copied from."""
        self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.template)
            ),
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template)),
        )
        self._manage("migrate", "--noinput", database=self.template)

    def template_exists(self) -> bool:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            found = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [self.template]
            ).fetchone()
        return found is not None

    def fresh_database(self) -> str:
        """Recreate the bench database from the template; the new merchant's key."""
        self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.database)
            ),
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(self.database), sql.Identifier(self.template)
            ),
        )
        out = self._manage("merchant", "create", "Bench", "--json")
        return str(json.loads(out.strip().splitlines()[-1])["secret_key"])

    def flush_redis(self) -> None:
        done = subprocess.run(  # noqa: S603 — redis-cli by absolute path
            [shutil.which("redis-cli") or "/usr/bin/redis-cli", "-u", self.redis_url, "FLUSHDB"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"redis-cli FLUSHDB failed: {done.stderr}")

    def drop(self) -> None:
        self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.database)
            ),
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.template)
            ),
        )

    def durability(self) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            values = [
                f"{name}={connection.execute(sql.SQL('SHOW {}').format(sql.Identifier(name))).fetchone()[0]}"  # type: ignore[index]
                for name in ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")
            ]
        return "PostgreSQL " + ", ".join(values)

    def count(self) -> dict[str, int]:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT status, count(*) FROM payments_paymentintent GROUP BY status"
            ).fetchall()
            refunds = connection.execute("SELECT count(*) FROM payments_refund").fetchone()
        counts = {str(status): int(n) for status, n in rows}
        counts["refunds"] = int(refunds[0]) if refunds else 0
        return counts

    def command(self, server: str, workers: int) -> list[str]:
        if server == "daphne":
            return [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port)]
        return [
            str(VENV_BIN / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
        ]


@contextlib.contextmanager
def running(
    command: list[str], *, env: dict[str, str] | None, cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server in its own process group, stopped (TERM, then KILL) on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 — executables from our venvs
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def _probe(target: Target, path: str) -> int:
    connection = HttpConnection(target.host, target.port)
    try:
        status, _ = await connection.request(build_request(target, "GET", path, None, False))
        return status
    finally:
        connection.close()


def wait_until_ready(
    target: Target, path: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{target.name} exited ({process.returncode}); see {log}")
        try:
            status = asyncio.run(_probe(target, path))
            if status == 200:
                return
            last = f"HTTP {status}"
        except (HttpError, OSError) as error:
            last = type(error).__name__
        time.sleep(0.2)
    raise SystemExit(f"{target.name} not ready on {path} after {timeout}s ({last}); see {log}")


# --- Profiling -----------------------------------------------------------------

# Where a sample's time goes: walking from the innermost frame outwards, the
# first frame that is not plain standard library decides (json and logging are
# named although they are stdlib, being what the question is about). py-spy
# names files relative to their sys.path entry: `django/db/models/query.py`.
LAYERS: list[tuple[str, str]] = [
    ("json/", "JSON (stdlib json)"),
    ("logging/", "logging"),
    ("psycopg/", "psycopg driver (incl. waiting on PostgreSQL)"),
    ("psycopg_pool/", "psycopg pool"),
    ("django/db/models/sql/", "ORM: SQL compilation"),
    ("django/db/backends/", "ORM: backend/cursor wrappers"),
    ("django/db/transaction", "ORM: transactions"),
    ("django/db/models/", "ORM: models, querysets, fields"),
    ("django/db/", "ORM: other"),
    ("rest_framework/", "DRF"),
    ("django/core/cache/", "Django cache (rate limit in Redis)"),
    ("redis/", "redis client (rate limit)"),
    ("django/", "Django: handlers, middleware, request, utils"),
    ("gunicorn/", "gunicorn"),
    ("daphne/", "daphne/twisted"),
    ("twisted/", "daphne/twisted"),
    ("asgiref/", "asgiref"),
    ("payments/", "PayLab code"),
    ("accounts/", "PayLab code"),
    ("config/", "PayLab code"),
]

# Cumulative: the share of samples with such a frame anywhere on the stack.
SUBSYSTEMS: list[tuple[str, str]] = [
    ("SyncWorker.handle_request|Server.handle|WebRequest.process", "request handling (total)"),
    ("StripeApi.post ", "API view POST (StripeApi.post)"),
    ("run_idempotent ", "idempotency (run_idempotent)"),
    ("ApiKeyAuthentication.authenticate ", "auth: API key lookup"),
    ("ApiKeyRateThrottle.allow_request ", "rate limit (cache INCR in Redis)"),
    ("Serializer.is_valid ", "input serializer validation"),
    ("Request._parse ", "body parsing"),
    ("payment_intent_create ", "service: payment_intent_create"),
    ("payment_intent_confirm |_confirm ", "service: confirm"),
    ("payment_intent_capture ", "service: capture"),
    ("refund_create ", "service: refund_create"),
    ("append_event ", "records: append_event (event + outbox)"),
    ("post_ledger ", "records: post_ledger"),
    ("(payments/presenters.py", "presenters (Stripe object shapes)"),
    (
        ".as_sql (django/|.compile (django/|.pre_sql_setup (django/|.get_related_selections (",
        "ORM SQL compilation (as_sql, compile, setup)",
    ),
    ("(psycopg/", "psycopg (driver + waiting on PostgreSQL)"),
    ("Connection.wait (psycopg", "waiting on PostgreSQL (psycopg Connection.wait)"),
    ("Atomic.__exit__ ", "transaction exit (COMMIT)"),
    ("RequestLogMiddleware.__call__ ", "middleware chain from RequestLogMiddleware down"),
    ("(logging/", "logging (any)"),
    ("(json/", "JSON encode/decode (any)"),
]


def _frame_path(frame: str) -> str:
    """`Cls.fn (django/db/models/query.py:123)` → `django/db/models/query.py`."""
    inside = frame.rpartition(" (")[2]
    return inside.rpartition(":")[0] if ":" in inside else inside.rstrip(")")


def _frame_function(frame: str) -> str:
    name, _, inside = frame.rpartition(" (")
    return f"{name} ({inside.rpartition(':')[0]})"


def profile_summary(raw_path: Path, top: int = 30) -> str:
    """Categorise py-spy's raw (collapsed) stacks."""
    stdlib = set(sys.stdlib_module_names)
    total = 0
    layers: Counter[str] = Counter()
    subsystems: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        leaves[_frame_function(frames[-1])] += count
        for name in {_frame_function(f) for f in frames}:
            functions[name] += count
        joined = ";".join(frames) + ";"
        for pattern, label in SUBSYSTEMS:
            if any(alternative in joined for alternative in pattern.split("|")):
                subsystems[label] += count
        layer = "other"
        for frame in reversed(frames):
            path = _frame_path(frame)
            matched = next((label for prefix, label in LAYERS if path.startswith(prefix)), None)
            if matched is not None:
                layer = matched
                break
            top_module = path.split("/")[0].removesuffix(".py")
            if top_module not in stdlib and not path.startswith("<"):
                layer = f"other libraries ({top_module})"
                break
        layers[layer] += count
    if total == 0:
        return "no samples"

    def share(n: int) -> str:
        return f"{100 * n / total:5.1f} %"

    out = [f"{total} samples of the gunicorn workers"]
    out.append("\nSelf time by layer (innermost non-stdlib frame):")
    out += [f"  {share(n)}  {label}" for label, n in layers.most_common()]
    out.append("\nCumulative share by subsystem (a sample counts once per row):")
    out += [f"  {share(n)}  {label}" for label, n in subsystems.most_common()]
    out.append(f"\nTop {top} functions by cumulative share:")
    out += [f"  {share(n)}  {name}" for name, n in functions.most_common(top)]
    out.append("\nTop 20 leaf frames (self time):")
    out += [f"  {share(n)}  {name}" for name, n in leaves.most_common(20)]
    return "\n".join(out)


def start_profiler(pid: int, duration: float, out: Path) -> subprocess.Popen[bytes]:
    py_spy = VENV_BIN / "py-spy"
    if not py_spy.exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    return subprocess.Popen(  # noqa: S603 — py-spy from our venv
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--rate",
            "250",
            "--duration",
            str(int(duration)),
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --- localstripe -----------------------------------------------------------------


def ensure_localstripe() -> Path:
    executable = LOCALSTRIPE_VENV / "bin" / "localstripe"
    if executable.exists():
        return executable
    print(f"creating {LOCALSTRIPE_VENV} and installing localstripe …", file=sys.stderr)
    subprocess.run(  # noqa: S603 — the base interpreter's venv module
        [sys.executable, "-m", "venv", "--clear", str(LOCALSTRIPE_VENV)], check=True
    )
    subprocess.run(  # noqa: S603 — pip of the venv just made
        [str(LOCALSTRIPE_VENV / "bin" / "pip"), "install", "--quiet", "localstripe"], check=True
    )
    return executable


# --- Calibration: the generator alone ---------------------------------------------


def _canned_server(port: int, keep_alive: bool) -> None:
    body = b'{"status":"ok"}'
    connection = b"keep-alive" if keep_alive else b"close"
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: "
        + connection
        + b"\r\n\r\n"
        + body
    )

    class Canned(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
                self.transport.write(response)
                if not keep_alive:
                    self.transport.close()
                    return

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Canned, "127.0.0.1", port, backlog=2048)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def calibrate(args: argparse.Namespace) -> list[dict[str, Any]]:
    reports = []
    context = multiprocessing.get_context("fork")
    for keep_alive in (True, False):
        server = context.Process(target=_canned_server, args=(args.port, keep_alive), daemon=True)
        server.start()
        time.sleep(0.5)
        target = Target(
            f"canned-server ({'keep-alive' if keep_alive else 'connection: close'})",
            "127.0.0.1",
            args.port,
            "",
        )
        measurement = measure(
            target,
            "healthz",
            clients=args.clients,
            duration=args.duration,
            warmup=args.warmup,
            generators=args.generators,
            idempotency=False,
            server_group=None,
            database=None,
            server_pids={server.pid} if server.pid is not None else set(),
        )
        server.terminate()
        server.join()
        measurement.notes.append(
            "generator ceiling: a one-process asyncio server answering a canned response"
        )
        reports.append(measurement.report())
    return reports


# --- Where the code comes from, and a quiet machine ---------------------------------


def _git(*args: str) -> str:
    git = shutil.which("git") or "/usr/bin/git"
    return subprocess.run(  # noqa: S603 — git by absolute path, fixed arguments
        [git, *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def source_tree(revision: str | None) -> tuple[Path, str]:
    """The checkout to run (this working tree, or a revision exported from git)
    and a description of it for the report.

    Others may be editing this working tree while the benchmark runs; a
    revision exported once (`--source HEAD`) keeps every run on the same code.
    """
    if revision is None:
        dirty = " (+ uncommitted changes)" if _git("status", "--porcelain") else ""
        return ROOT, f"working tree at {_git('rev-parse', '--short=12', 'HEAD')}{dirty}"
    commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}")
    destination = BENCH_DIR / f"src-{commit[:12]}"
    if not destination.exists():
        archive = subprocess.run(  # noqa: S603 — git by absolute path, fixed arguments
            [shutil.which("git") or "/usr/bin/git", "archive", "--format=tar", commit],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        partial = destination.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(partial, filter="data")
        partial.rename(destination)
    return destination, f"git {commit[:12]} (exported to {destination.relative_to(ROOT)})"


def wait_until_quiet(limit: float, threshold: float = 0.25) -> str | None:
    """Wait (up to `limit` s) for 3 s in a row of under `threshold` busy cores;
    a note for the report when the machine stayed busy."""
    deadline = time.monotonic() + limit
    quiet_since: float | None = None
    busy, total = _machine_busy()
    cores = os.cpu_count() or 1
    used = 0.0
    while time.monotonic() < deadline:
        time.sleep(1.0)
        busy_now, total_now = _machine_busy()
        used = (busy_now - busy) / max(1, total_now - total) * cores
        busy, total = busy_now, total_now
        if used < threshold:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 3:
                return None
        else:
            quiet_since = None
    return f"machine not quiet before the run ({used:.2f} cores busy with other work)"


# --- In-process cost per operation (load-independent) --------------------------
#
# Wall-clock throughput on a shared 2-core box depends on whatever else runs;
# the cost of one operation does not. `--in-process N` drives N payments
# through the real WSGI application (config.wsgi: every middleware, DRF, the
# real PostgreSQL and Redis, the connection returned to the pool after each
# request as under gunicorn) in one process, and reports per operation:
# SQL statements (Django's cursor executes, savepoints included; BEGIN and
# COMMIT are psycopg's own round trips on top, counted as transactions),
# Python CPU ms (time.process_time, no statement capture active), and the
# PostgreSQL backends' CPU over the same pass.

IN_PROCESS_OPS = ("confirm", "create_manual", "confirm_manual", "capture", "refund")
IN_PROCESS_LABELS = {
    "confirm": "create+confirm pm_card_visa (automatic capture)",
    "create_manual": "create (manual capture, no confirm)",
    "confirm_manual": "confirm (manual capture)",
    "capture": "capture",
    "refund": "refund 500 of 2000",
}


def _wsgi_call(
    application: Any,
    method: str,
    path: str,
    form: dict[str, str],
    secret: str,
    idempotency: bool,
) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(form).encode()
    token = base64.b64encode(f"{secret}:".encode()).decode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8765",
        "HTTP_HOST": "127.0.0.1:8765",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Basic {token}",
        "HTTP_USER_AGENT": "paylab-bench",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if idempotency:
        environ["HTTP_IDEMPOTENCY_KEY"] = str(uuid.uuid4())
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    result = application(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        # Fires request_finished: the connection goes back to the pool.
        result.close()
    return int(statuses[0].split()[0]), data


def _backend_ticks(database: str) -> int:
    return sum(
        ticks
        for comm, _, ticks, cmdline in _proc_stats().values()
        if comm == "postgres" and f" {database} " in cmdline
    )


def in_process_child(args: argparse.Namespace) -> int:
    """Runs inside the environment of the bench database (see `run_in_process`)."""
    import cProfile
    import pstats

    from config.wsgi import application

    secret = os.environ["PAYLAB_BENCH_SECRET"]
    database = args.database
    idem = args.idempotency_keys
    payment_form = {
        "amount": "2000",
        "currency": "usd",
        "confirm": "true",
        "payment_method": "pm_card_visa",
    }
    manual_form = {
        "amount": "2000",
        "currency": "usd",
        "capture_method": "manual",
        "payment_method": "pm_card_visa",
    }

    def iteration(timed: dict[str, list[float]] | None, hook: Any = None) -> None:
        def call(op: str, path: str, form: dict[str, str]) -> bytes:
            if hook is not None:
                hook(op)
            started = time.process_time()
            status, body = _wsgi_call(application, "POST", path, form, secret, idem)
            if timed is not None:
                timed[op].append((time.process_time() - started) * 1000)
            if status != 200:
                raise SystemExit(f"{op}: HTTP {status}: {body[:500]!r}")
            return body

        call("confirm", "/v1/payment_intents", payment_form)
        intent = json.loads(call("create_manual", "/v1/payment_intents", manual_form))["id"]
        call("confirm_manual", f"/v1/payment_intents/{intent}/confirm", {})
        call("capture", f"/v1/payment_intents/{intent}/capture", {})
        call("refund", "/v1/refunds", {"payment_intent": intent, "amount": "500"})

    for _ in range(args.in_process_warmup):
        iteration(None)

    # Pass 1: what reaches PostgreSQL per operation, counted on psycopg's
    # cursor (below Django and its execute wrappers, so a query carrying
    # several statements counts once as a query, each of its statements as
    # a statement). Counting costs CPU, so pass 2 measures time without it.
    import psycopg as driver

    queries: Counter[str] = Counter()
    statements: dict[str, list[str]] = defaultdict(list)
    current = [""]

    def set_op(op: str) -> None:
        current[0] = op

    original_execute = driver.ClientCursor.execute

    def counted_execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        queries[current[0]] += 1
        text = query if isinstance(query, str) else str(query)
        statements[current[0]].extend(part.strip() for part in text.split(";\n"))
        return original_execute(self, query, params, **kwargs)

    # psycopg's own commands: the BEGIN it sends before the first statement
    # of a transaction, COMMIT or ROLLBACK at its end (none when a query
    # already ended the transaction), a round trip each.
    commands: Counter[str] = Counter()
    connection_class = driver.Connection
    original_command = connection_class._exec_command

    def counted_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        commands[current[0]] += 1
        return original_command(self, command, *args, **kwargs)

    count_runs = max(1, min(args.in_process, 50))
    driver.ClientCursor.execute = counted_execute  # type: ignore[method-assign]
    connection_class._exec_command = counted_command  # type: ignore[method-assign]
    try:
        for _ in range(count_runs):
            iteration(None, set_op)
    finally:
        driver.ClientCursor.execute = original_execute  # type: ignore[method-assign]
        connection_class._exec_command = original_command  # type: ignore[method-assign]

    # Pass 2: CPU per operation.
    timed: dict[str, list[float]] = defaultdict(list)
    # CPU time, not wall time: waits on PostgreSQL would drown the Python.
    profiler = cProfile.Profile(time.process_time) if args.in_process_profile else None
    pg_before = _backend_ticks(database)
    cpu_before = time.process_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(args.in_process):
        iteration(timed)
    if profiler is not None:
        profiler.disable()
    cpu_total = time.process_time() - cpu_before
    pg_ms = (_backend_ticks(database) - pg_before) * 1000 / CLOCK_TICKS

    report: dict[str, Any] = {
        "iterations": args.in_process,
        "idempotency_keys": idem,
        "python_cpu_ms_per_iteration": round(cpu_total * 1000 / args.in_process, 2),
        "postgres_cpu_ms_per_iteration": round(pg_ms / args.in_process, 2),
        "ops": {},
    }
    for op in IN_PROCESS_OPS:
        values = sorted(timed[op])
        report["ops"][op] = {
            "label": IN_PROCESS_LABELS[op],
            "statements": round(len(statements[op]) / count_runs, 2),
            "queries": round(queries[op] / count_runs, 2),
            "commands": round(commands[op] / count_runs, 2),
            "round_trips": round((queries[op] + commands[op]) / count_runs, 2),
            "cpu_ms_mean": round(sum(values) / len(values), 3),
            "cpu_ms_p50": round(percentile(values, 0.5), 3),
            "sample_sql": [
                " ".join(s.split())[:150]
                for s in statements[op][-len(statements[op]) // count_runs :]
            ],
        }
    if profiler is not None:
        profiler.dump_stats(args.in_process_profile)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(30)
        Path(args.in_process_profile + ".txt").write_text(out.getvalue())
    print(json.dumps(report))
    return 0


def run_in_process(args: argparse.Namespace, paylab: PayLab) -> dict[str, Any]:
    """A fresh bench database, processors at zero latency, then the child."""
    secret = paylab.fresh_database()
    paylab.flush_redis()
    note = set_processor_latency(paylab, "0:0")
    env = {**paylab.server_env(), "PAYLAB_BENCH_SECRET": secret}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--in-process-child",
        "--in-process",
        str(args.in_process),
        "--in-process-warmup",
        str(args.in_process_warmup),
        "--database",
        paylab.database,
    ]
    if args.idempotency_keys:
        command.append("--idempotency-keys")
    if args.in_process_profile:
        command += ["--in-process-profile", str(Path(args.in_process_profile).resolve())]
    done = subprocess.run(  # noqa: S603 — our own interpreter and this script
        command, cwd=paylab.source, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"in-process run failed:\n{done.stdout}{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["notes"] = [note, f"code: {paylab.source_note}", paylab.durability()]
    report["load_average"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return report


def print_in_process(report: dict[str, Any], show_sql: bool) -> None:
    print(
        f"in-process, {report['iterations']} iterations"
        f" (idempotency keys: {report['idempotency_keys']}), load average {report['load_average']}"
    )
    header = (
        f"{'operation':<50} {'stmts':>6} {'queries':>7} {'cmds':>5} {'trips':>6}"
        f" {'CPU ms':>7} {'p50':>7}"
    )
    print(header)
    print("-" * len(header))
    for op in report["ops"].values():
        print(
            f"{op['label']:<50} {op['statements']:>6} {op['queries']:>7} {op['commands']:>5}"
            f" {op['round_trips']:>6} {op['cpu_ms_mean']:>7} {op['cpu_ms_p50']:>7}"
        )
        if show_sql:
            for statement in op["sample_sql"]:
                print(f"    {statement}")
    print(
        f"per iteration (all five): Python CPU {report['python_cpu_ms_per_iteration']} ms,"
        f" PostgreSQL backends {report['postgres_cpu_ms_per_iteration']} ms"
    )
    for note in report["notes"]:
        print(f"  {note}")
    print(
        "stmts: SQL statements (savepoints included); queries: what psycopg sent (one may"
        " carry several statements); cmds: psycopg's BEGIN/COMMIT; trips = queries + cmds;"
        " CPU: Python in this process, no counting active"
    )


# --- Output ------------------------------------------------------------------------


def print_table(reports: list[dict[str, Any]]) -> None:
    header = (
        f"{'target':<26} {'scenario':<9} {'pay/s':>7} {'req/s':>7} {'ok':>7} {'errors':>7}"
        f" {'p50':>7} {'p95':>7} {'p99':>7}  cores server/pg/gen/other  CPU ms/payment server/pg"
    )
    print(header)
    print("-" * len(header))
    for report in reports:
        latency = report["latency_ms"]
        cpu = report["cpu_cores"]
        per = report["cpu_ms_per_payment"]
        errors = sum(report["errors"].values())
        print(
            f"{report['target']:<26} {report['scenario']:<9} {report['payments_per_s']:>7}"
            f" {report['requests_per_s']:>7} {report['requests_ok']:>7} {errors:>7}"
            f" {latency['p50']:>7} {latency['p95']:>7} {latency['p99']:>7}"
            f"  {cpu['server']}/{cpu['postgres']}/{cpu['generator']}/{cpu['other']}"
            f"  {per.get('server', '-')}/{per.get('postgres', '-')}"
        )
        for step, summary in report["latency_ms_by_step"].items():
            print(
                f"{'':<26}   {step:<24} {'':>15}"
                f" {summary['p50']:>7} {summary['p95']:>7} {summary['p99']:>7}"
            )
        if report["errors"]:
            print(f"{'':<26}   errors: {report['errors']}")
        for note in report["notes"]:
            print(f"{'':<26}   {note}")
    print("latency in ms; payments/s and requests/s over the measured window only")


# --- Main --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server",
        action="append",
        choices=["daphne", "gunicorn", "none"],
        help="daphne (config.asgi, the Procfile's) or gunicorn (config.wsgi, --workers sync "
        "workers); repeat for both; 'none' for localstripe alone (default: gunicorn)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=["confirm", "manual", "healthz"],
        help="repeat for several (default: confirm)",
    )
    parser.add_argument("--compare", choices=["localstripe"], default=None)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--generators", type=int, default=1, help="load-generator processes (clients split)"
    )
    parser.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="send a fresh Idempotency-Key on every POST, as the stripe library does on retries",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the gunicorn workers")
    parser.add_argument("--calibrate", action="store_true", help="measure the generator alone")
    parser.add_argument("--json", action="store_true", help="also print one JSON line per run")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--localstripe-port", type=int, default=8420)
    parser.add_argument(
        "--pg-admin-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL URL allowed to create and drop databases",
    )
    parser.add_argument("--database", default="paylab_bench")
    # Not Redis database 0: the rate limiter's counters and the Celery queue there
    # are shared with whatever else runs on this box (test suites included).
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--rate-limit", type=int, default=1_000_000)
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="PAYLAB_LOG_LEVEL for the server; INFO writes one JSON line per request",
    )
    parser.add_argument(
        "--source",
        default=None,
        metavar="REVISION",
        help="run PayLab from this git revision, exported once under var/bench "
        "(default: this working tree as it is)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run, wait up to this long for other work on the machine to stop",
    )
    parser.add_argument(
        "--processor-latency",
        action="append",
        metavar="P50:P99",
        help="issue 4: set every simulated processor's latency to this p50/p99 in ms (and "
        "their own failure rates to 0) before the run; repeat to compare, e.g. "
        "--processor-latency 0:0 --processor-latency 300:600 (default: the shipped profiles)",
    )
    parser.add_argument("--keep-db", action="store_true", help="leave the bench database")
    parser.add_argument("--verify", action="store_true", help="run manage.py verify after each run")
    parser.add_argument(
        "--in-process",
        type=int,
        default=0,
        metavar="N",
        help="no server, no load: N iterations of the five write operations through the WSGI "
        "app in one process; statements, round trips and CPU ms per operation",
    )
    parser.add_argument("--in-process-warmup", type=int, default=30, metavar="N")
    parser.add_argument(
        "--in-process-profile", default=None, metavar="PATH", help="cProfile the CPU pass here"
    )
    parser.add_argument("--show-sql", action="store_true", help="with --in-process")
    parser.add_argument(
        "--reuse-template",
        action="store_true",
        help="with --in-process --keep-db: skip the migrate when the template database exists "
        "(only while no migration changed)",
    )
    parser.add_argument("--in-process-child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def set_processor_latency(paylab: PayLab, spec: str) -> str:
    """Issue 4: every processor at this latency, none failing on its own."""
    p50, _, p99 = spec.partition(":")
    document = json.loads(paylab._manage("processors", "export"))
    for processor in document["processors"]:
        processor.update(
            latency_p50_ms=int(p50),
            latency_p99_ms=int(p99 or p50),
            soft_decline_rate_bp=0,
            timeout_rate_bp=0,
            unavailable_rate_bp=0,
        )
    path = BENCH_DIR / "processors.json"
    path.write_text(json.dumps(document))
    paylab._manage("processors", "import", str(path))
    return f"processors: latency p50={int(p50)} ms p99={int(p99 or p50)} ms, no own failures"


def run_paylab(
    args: argparse.Namespace,
    paylab: PayLab,
    server: str,
    scenario: str,
    processor_latency: str | None = None,
) -> dict[str, Any]:
    secret = paylab.fresh_database()
    paylab.flush_redis()
    latency_note = set_processor_latency(paylab, processor_latency) if processor_latency else None
    label = "daphne" if server == "daphne" else f"gunicorn x{args.workers} sync"
    if processor_latency:
        label += f" proc {processor_latency}ms"
    target = Target(f"paylab {label}", "127.0.0.1", args.port, secret)
    log = BENCH_DIR / f"server-{server}-{scenario}.log"
    command = paylab.command(server, args.workers)
    if server == "daphne":
        command.append("config.asgi:application")
    with running(command, env=paylab.server_env(), cwd=paylab.source, log=log) as process:
        wait_until_ready(target, "/readyz", process, log)
        busy_note = wait_until_quiet(args.wait_quiet) if args.wait_quiet else None
        profile_out = BENCH_DIR / f"profile-{server}-{scenario}.txt"
        profiler: list[subprocess.Popen[bytes]] = []

        def start_profile() -> str:
            profiler.append(start_profiler(process.pid, args.duration, profile_out))
            return f"profiled with py-spy ({profile_out}); throughput lower than unprofiled"

        measurement = measure(
            target,
            scenario,
            clients=args.clients,
            duration=args.duration,
            warmup=args.warmup,
            generators=args.generators,
            idempotency=args.idempotency_keys,
            server_group=process.pid,
            database=paylab.database,
            on_window_start=start_profile if args.profile and server == "gunicorn" else None,
        )
        for spy in profiler:
            spy.wait(timeout=args.duration + 60)
    counts = paylab.count()
    if latency_note:
        measurement.notes.append(latency_note)
    measurement.notes.append(f"code: {paylab.source_note}")
    measurement.notes.append(paylab.durability())
    if busy_note:
        measurement.notes.append(busy_note)
    measurement.notes.append(f"database after the run: {counts}")
    if args.verify:
        out = paylab._manage("verify")
        measurement.notes.append("verify: " + " | ".join(out.strip().splitlines()[-3:]))
    report = measurement.report()
    if profiler:
        summary = profile_summary(profile_out)
        (BENCH_DIR / f"profile-{server}-{scenario}-summary.txt").write_text(summary + "\n")
        print(summary, file=sys.stderr)
    return report


def run_localstripe(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    executable = ensure_localstripe()
    target = Target("localstripe", "127.0.0.1", args.localstripe_port, "sk_test_bench")
    log = BENCH_DIR / f"localstripe-{scenario}.log"
    command = [str(executable), "--port", str(args.localstripe_port), "--from-scratch"]
    existed = LOCALSTRIPE_STORE.exists()
    try:
        with running(command, env=None, cwd=BENCH_DIR, log=log) as process:
            wait_until_ready(target, "/v1/payment_intents", process, log)
            busy_note = wait_until_quiet(args.wait_quiet) if args.wait_quiet else None
            measurement = measure(
                target,
                scenario,
                clients=args.clients,
                duration=args.duration,
                warmup=args.warmup,
                generators=args.generators,
                idempotency=args.idempotency_keys,
                server_group=process.pid,
                database=None,
            )
    finally:
        if not existed:
            LOCALSTRIPE_STORE.unlink(missing_ok=True)
    if busy_note:
        measurement.notes.append(busy_note)
    measurement.notes.append(
        "localstripe keeps objects in memory but pickles its whole store to "
        f"{LOCALSTRIPE_STORE} on every write, so each request costs more as the store grows"
    )
    return measurement.report()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.in_process_child:
        return in_process_child(args)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if args.in_process:
        return main_in_process(args)
    servers = [s for s in (args.server or ["gunicorn"]) if s != "none"]
    scenarios = args.scenario or ["confirm"]
    reports: list[dict[str, Any]] = []
    if args.calibrate:
        reports += calibrate(args)
    paylab = paylab_from_args(args)
    if servers:
        paylab.source, paylab.source_note = source_tree(args.source)
    try:
        if servers:
            print("preparing the template database (migrate) …", file=sys.stderr)
            paylab.prepare_template()
        for server in servers:
            for scenario in scenarios:
                for latency in args.processor_latency or [None]:
                    print(f"running paylab {server} / {scenario} / {latency} …", file=sys.stderr)
                    reports.append(run_paylab(args, paylab, server, scenario, latency))
        if args.compare == "localstripe":
            for scenario in scenarios:
                print(f"running localstripe / {scenario} …", file=sys.stderr)
                reports.append(run_localstripe(args, scenario))
    finally:
        if servers and not args.keep_db:
            paylab.drop()
            paylab.flush_redis()
    print_table(reports)
    if args.json:
        for report in reports:
            print(json.dumps(report, separators=(",", ":")))
    return 0


def paylab_from_args(args: argparse.Namespace) -> PayLab:
    return PayLab(
        admin_url=args.pg_admin_url,
        database=args.database,
        redis_url=args.redis_url,
        port=args.port,
        rate_limit=args.rate_limit,
        log_level=args.log_level,
    )


def main_in_process(args: argparse.Namespace) -> int:
    paylab = paylab_from_args(args)
    paylab.source, paylab.source_note = source_tree(args.source)
    try:
        if not (args.reuse_template and paylab.template_exists()):
            print("preparing the template database (migrate) …", file=sys.stderr)
            paylab.prepare_template()
        report = run_in_process(args, paylab)
    finally:
        if not args.keep_db:
            paylab.drop()
            paylab.flush_redis()
    print_in_process(report, args.show_sql)
    if args.json:
        print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
