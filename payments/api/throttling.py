"""Per-API-key rate limit, shared by every process through the cache
(Redis in full mode; per process in embedded mode, where one web process
serves the API).

A fixed one-second window per key: INCR on `rl:<key id>:<second>`, good
enough to reproduce Stripe's 429s; a request refused here runs nothing, so
it creates nothing. With Redis the count is one pipelined round trip
(`SET key 0 EX 2 NX` then `INCR key`) on a client made once per process —
Django's cache API would take three (SET NX, EXISTS, INCR) and build a
client object for each.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts.authentication import ApiClient


def limit_for(client: ApiClient) -> int:
    configured = (client.merchant.settings or {}).get("rate_limit_per_second")
    try:
        return (
            max(1, int(configured))
            if configured is not None
            else settings.PAYLAB_RATE_LIMIT_DEFAULT
        )
    except (TypeError, ValueError):
        return settings.PAYLAB_RATE_LIMIT_DEFAULT


_redis_client: Any = None
_redis_lock = threading.Lock()


def _redis() -> Any:
    """The cache's Redis, or None in embedded mode (a per-process cache)."""
    global _redis_client
    if _redis_client is None:
        config = settings.CACHES["default"]
        if not config["BACKEND"].endswith("RedisCache"):
            return None
        import redis

        with _redis_lock:
            if _redis_client is None:
                _redis_client = redis.Redis.from_url(str(config["LOCATION"]))
    return _redis_client


def _count(key: str) -> int:
    """This request's number in its window."""
    client = _redis()
    if client is not None:
        # The cache's key format (prefix, version), as `cache.incr` would use.
        stored = cache.make_key(key)
        pipe = client.pipeline(transaction=False)
        pipe.set(stored, 0, ex=2, nx=True)
        pipe.incr(stored)
        return int(pipe.execute()[1])
    if cache.add(key, 1, timeout=2):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=2)
        return 1


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return True
        now = time.time()
        window = int(now)
        self._wait = 1 - (now - window)
        return _count(f"rl:{client.api_key.pk}:{window}") <= limit_for(client)

    def wait(self) -> float | None:
        return getattr(self, "_wait", 1.0)
