"""Per-API-key rate limit, shared by every process through the cache
(Redis in full mode; per process in embedded mode, where one web process
serves the API).

A fixed one-second window per key: INCR on `rl:<key id>:<second>`. Cheap
(one round trip), and good enough to reproduce Stripe's 429s; a request
refused here runs nothing, so it creates nothing.
"""

from __future__ import annotations

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


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return True
        now = time.time()
        window = int(now)
        self._wait = 1 - (now - window)
        key = f"rl:{client.api_key.pk}:{window}"
        if cache.add(key, 1, timeout=2):
            count = 1
        else:
            try:
                count = cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=2)
                count = 1
        return count <= limit_for(client)

    def wait(self) -> float | None:
        return getattr(self, "_wait", 1.0)
