"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from config.health import readiness


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; no dependency is consulted."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    healthy, checks = readiness()
    failing = [name for name, result in checks.items() if result["status"] != "ok"]
    body = {"status": "ok" if healthy else "unavailable", "failing": failing, "checks": checks}
    return JsonResponse(body, status=200 if healthy else 503)
