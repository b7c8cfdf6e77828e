"""Helpers for tests that run real PayLab processes (daphne, relay, Celery
workers, manage.py commands) beside the test: a free port, polling until a
condition holds, a manage.py call, a process with its output in a log file."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `check` until it is true; a check that raises counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # not up yet
            if check():
                return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def manage(env: Mapping[str, str], *args: str, timeout: float = 180) -> str:
    """Run `manage.py ARGS` to completion; its last line of output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def spawn(
    log_dir: Path, name: str, env: Mapping[str, str], *command: str
) -> subprocess.Popen[bytes]:
    """Start a long-running process writing to `log_dir/name.log`."""
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 (lives with the process)
    return subprocess.Popen(command, cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
