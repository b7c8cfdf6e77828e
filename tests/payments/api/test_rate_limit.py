"""The per-API-key rate limit: 429 `rate_limit` with `Retry-After`, nothing
done for a refused request, and (with Redis) one limit for every process.

The throttle counts requests per key in fixed one-second windows of
`time.time()`. Most tests freeze that clock (`payments.api.throttling.time`)
inside a second no other test uses, so a burst can never straddle a window
boundary and no counter of another test is shared; one test keeps the real
clock and retries a burst that straddled a second.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpResponse

from payments.api import throttling
from payments.models import Event, IdempotencyKey, PaymentIntent
from tests.conftest import MerchantWithKey
from tests.payments.api.conftest import Stripe

LIMIT = 2
BURST = 5
ROOT = Path(__file__).resolve().parents[3]
# Far in the future and distinct per process and per test: no window is ever
# shared with another test, or with another test run on the same Redis.
_seconds = itertools.count(5_000_000_000 + (os.getpid() % 100_000) * 1_000)


class FrozenClock:
    """Stands in for the `time` module the throttle reads."""

    def __init__(self) -> None:
        # Mid-second, as far from both window edges as can be.
        self.now = next(_seconds) + 0.5

    def time(self) -> float:
        return self.now

    def next_second(self) -> None:
        self.now += 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    frozen = FrozenClock()
    monkeypatch.setattr(throttling, "time", frozen)
    return frozen


@pytest.fixture
def limited_a(merchant_a: MerchantWithKey) -> MerchantWithKey:
    merchant_a.merchant.settings = {
        **(merchant_a.merchant.settings or {}),
        "rate_limit_per_second": LIMIT,
    }
    merchant_a.merchant.save(update_fields=["settings"])
    return merchant_a


def _assert_rate_limited(response: HttpResponse) -> None:
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "rate_limit"
    assert int(response["Retry-After"]) >= 1


def test_burst_over_the_limit_gets_429_with_retry_after(
    limited_a: MerchantWithKey, clock: FrozenClock
) -> None:
    stripe = Stripe(limited_a.api())

    statuses = [stripe.get("balance").status_code for _ in range(BURST)]

    assert statuses == [200] * LIMIT + [429] * (BURST - LIMIT)
    _assert_rate_limited(stripe.get("balance"))


def test_limit_resets_in_the_next_second(limited_a: MerchantWithKey, clock: FrozenClock) -> None:
    # given a key that used up its second
    stripe = Stripe(limited_a.api())
    for _ in range(LIMIT):
        stripe.ok(stripe.get("balance"))
    assert stripe.get("balance").status_code == 429

    # when the next second starts
    clock.next_second()

    # then it may make LIMIT requests again
    assert [stripe.get("balance").status_code for _ in range(LIMIT + 1)] == [200, 200, 429]


def test_limit_is_per_key_not_global(
    limited_a: MerchantWithKey, merchant_b: MerchantWithKey, clock: FrozenClock
) -> None:
    stripe_a, stripe_b = Stripe(limited_a.api()), Stripe(merchant_b.api())
    for _ in range(BURST):
        stripe_a.get("balance")

    assert stripe_b.get("balance").status_code == 200


def test_throttled_post_creates_nothing(limited_a: MerchantWithKey, clock: FrozenClock) -> None:
    # given a key that used up its second
    stripe = Stripe(limited_a.api())
    for _ in range(LIMIT):
        stripe.ok(stripe.get("balance"))

    # when it creates and confirms a payment, with an idempotency key
    response = stripe.post(
        "payment_intents",
        {"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
        headers={"Idempotency-Key": "throttled-1"},
    )

    # then it is refused and nothing exists, not even the key: the retry runs
    _assert_rate_limited(response)
    assert PaymentIntent.objects.count() == 0
    assert Event.objects.count() == 0
    assert not IdempotencyKey.objects.exists()
    clock.next_second()
    retried = stripe.post(
        "payment_intents",
        {"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
        headers={"Idempotency-Key": "throttled-1"},
    )
    assert stripe.ok(retried)["status"] == "succeeded"
    assert PaymentIntent.objects.count() == 1


def test_burst_within_one_real_second_is_limited(limited_a: MerchantWithKey) -> None:
    # The real clock: a burst that straddles a second boundary may pass in two
    # windows, so it is retried in the next second until one fits in one.
    stripe = Stripe(limited_a.api())
    for _ in range(5):
        while time.time() % 1 > 0.5:  # start early in a second
            time.sleep(0.05)
        started = int(time.time())
        responses = [stripe.get("balance") for _ in range(BURST)]
        if int(time.time()) == started:
            break
    else:
        pytest.fail("no burst of five requests fitted in one second")

    assert [r.status_code for r in responses].count(200) <= LIMIT
    for response in responses[LIMIT:]:
        _assert_rate_limited(response)


# --- Full mode: one limit shared by every process -----------------------------------------

_OTHER_PROCESS = """
import json, sys, types
import django
django.setup()
from accounts.authentication import ApiClient
from accounts.models import ApiKey, Merchant
from payments.api import throttling

key_id, merchant_id, limit, now = sys.argv[1:5]
throttling.time = types.SimpleNamespace(time=lambda: float(now))
merchant = Merchant(pk=int(merchant_id), settings={"rate_limit_per_second": int(limit)})
request = types.SimpleNamespace(user=ApiClient(ApiKey(pk=int(key_id), merchant=merchant)))
throttle = throttling.ApiKeyRateThrottle()
print("ready", flush=True)
for line in sys.stdin:
    allowed = [throttle.allow_request(request, None) for _ in range(int(line))]
    print(json.dumps(allowed), flush=True)
"""


class OtherProcess:
    """The throttle of another PayLab process: a new interpreter with its own
    cache connection and the same settings, started once (Django's start-up
    is slow) and then asked to admit `count` requests with one key."""

    def __init__(self, *, key_id: int, merchant_id: int, now: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _OTHER_PROCESS,
                str(key_id),
                str(merchant_id),
                str(LIMIT),
                repr(now),
            ],
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line, f"the other process died (exit code {self.process.poll()})"
        return line

    def requests(self, count: int) -> list[bool]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        allowed: list[bool] = json.loads(self._line())
        return allowed

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def other_process(limited_a: MerchantWithKey, clock: FrozenClock) -> Iterator[OtherProcess]:
    key = limited_a.merchant.api_keys.get()
    other = OtherProcess(key_id=key.pk, merchant_id=limited_a.merchant.pk, now=clock.now)
    yield other
    other.close()


@pytest.mark.redis
def test_limit_is_shared_by_processes_through_redis(
    limited_a: MerchantWithKey, clock: FrozenClock, other_process: OtherProcess
) -> None:
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    stripe = Stripe(limited_a.api())

    # given another web process that served this key's whole allowance this second
    assert other_process.requests(LIMIT) == [True, True]

    # when this process gets a request with the key in the same second
    response = stripe.get("balance")

    # then it is refused here, and the other process refuses the rest of the second too
    _assert_rate_limited(response)
    assert other_process.requests(1) == [False]
