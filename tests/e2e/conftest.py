"""A real PayLab for the browser tests, and Debian's Chromium driven by Playwright.

The server is daphne in a subprocess — HTTP and websockets, as in
production — over a database of its own, so the tests hold no database
connection and the browser sees only what the server commits:

- embedded mode (no DATABASE_URL / REDIS_URL): a fresh SQLite file; daphne
  runs the outbox relay itself over its in-memory channel layer;
- full mode: a fresh PostgreSQL database `<test db>_e2e` next to the suite's
  (dropped at the end), Redis, daphne and `manage.py relay`.

Data is made the way a user makes it: the cast (users, merchant, key) by a
management command, payments through the HTTP API.

The browser is /usr/bin/chromium (apt: chromium). Playwright's own browser
download cannot work on this network, and a missing browser fails the tests
loudly — CI installs it (.ci/run).

Playwright's sync API runs an asyncio loop in the test thread; these tests
never touch Django's ORM in-process (everything goes through the server), so
Django's async-safety check has nothing to object to and
DJANGO_ALLOW_ASYNC_UNSAFE is not needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.processes import free_port, manage, spawn, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
PASSWORD = "e2e password correct horse"
FULL = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))

CAST = f"""
import json
from accounts import services
merchant, issued = services.merchant_create_with_key(name="Acme Books", slug="acme")
other, _ = services.merchant_create_with_key(name="Globex Travel", slug="globex")
services.user_create(email="operator@e2e.test", password={PASSWORD!r}, role="operator")
services.user_create(email="owner@acme.test", password={PASSWORD!r}, role="merchant",
                     merchant=merchant, level="owner")
print(json.dumps({{"secret": issued.secret, "merchant_id": merchant.pk}}))
"""


class PayLab:
    """daphne (and in full mode the relay) over a database of its own."""

    def __init__(self, var: Path) -> None:
        self.var = var
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLAB_")}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            PAYLAB_SECRET_KEY="e2e-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0123",
            PAYLAB_VAR_DIR=str(var),
            PAYLAB_RATE_LIMIT="1000000",
            PAYLAB_LOG_LEVEL="WARNING",
            PAYLAB_ALLOWED_HOSTS="127.0.0.1,localhost",
            # The tests assert what each test card does; the default
            # processors' own soft declines and timeouts (swift declines
            # 1.5 % of approvals) would make that a dice roll.
            PAYLAB_PROCESSOR_FAULTS="false",
        )
        self.database = ""
        if FULL:
            db = settings.DATABASES["default"]
            self.database = f"test_{db['NAME']}_e2e"[:63]
            self.admin_dsn = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/postgres"
            env["DATABASE_URL"] = (
                f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{self.database}"
            )
            env["REDIS_URL"] = os.environ["REDIS_URL"]
            env["PAYLAB_DB_POOL_MAX"] = "4"
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []
        self.cast: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _admin_sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(statement)

    def manage(self, *args: str) -> str:
        return manage(self.env, *args, timeout=180)

    def spawn(self, name: str, *command: str) -> None:
        self.processes.append(spawn(self.var, name, self.env, *command))

    def start(self) -> None:
        if FULL:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.database}"')
            self._admin_sql(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "-v0")
        # Served as in production: whitenoise over the hashed manifest.
        self.manage("collectstatic", "--noinput", "-v0")
        self.cast = json.loads(self.manage("shell", "-c", CAST))
        self.spawn(
            "web",
            str(BIN / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "config.asgi:application",
        )
        if FULL:
            self.spawn("relay", sys.executable, "manage.py", "relay", "--poll", "0.05")
        wait_for(lambda: httpx.get(self.url + "/healthz").status_code == 200, 60, "daphne")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if FULL:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.var.glob("*.log")
        )

    def api(self, path: str, data: dict[str, str], *, status: int = 200) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/v1/{path}",
            data=data,
            headers={"Authorization": f"Bearer {self.cast['secret']}"},
            timeout=30,
        )
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body

    def pay(self, *, status: int = 200, **params: str) -> dict[str, Any]:
        data = {
            "amount": "2500",
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": "true",
            **params,
        }
        return self.api("payment_intents", data, status=status)


@pytest.fixture(scope="session")
def paylab() -> Iterator[PayLab]:
    with tempfile.TemporaryDirectory(prefix="paylab-e2e-") as var:
        server = PayLab(Path(var))
        try:
            server.start()
            yield server
        except AssertionError as error:
            raise AssertionError(f"{error}\n{server.logs()}") from error
        finally:
            server.stop()


# Package scope, not session: Playwright's sync API runs an event loop in the
# main thread while it is open, and any later database test in the same run
# would then refuse to touch the ORM (SynchronousOnlyOperation). pytest tears
# this down as soon as the next test is outside tests/e2e.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver "
        "(the browser tests need Debian's Chromium; Playwright's download cannot work here)"
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


class Console:
    """Everything the page complained about: console errors and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


def login(browser: Browser, paylab: PayLab, email: str, **context: Any) -> tuple[Page, Console]:
    page = browser.new_context(base_url=paylab.url, **context).new_page()
    console = Console(page)
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{paylab.url}/")
    return page, console


@pytest.fixture
def operator_page(browser: Browser, paylab: PayLab) -> Iterator[tuple[Page, Console]]:
    page, console = login(browser, paylab, "operator@e2e.test")
    yield page, console
    page.context.close()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
