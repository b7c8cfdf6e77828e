"""The Processors dashboard page: every simulated processor with its
breaker state, recent breaker events and scheduled outages; operators
force a breaker open, reset it or schedule a 5-minute outage/brownout.

Processors belong to no merchant, so every role may look; only operators
act (`can_operate`). The table region refreshes itself every 2 s (htmx).
"""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.roles import any_role, can_operate, role_required
from config.errors import PayLabError
from payments.api.processors import present_outage, present_processor
from payments.models import Processor, ProcessorEvent, ProcessorOutage
from payments.services import processors

TEMPLATE = "payments/processors.html"


def _context(request: HttpRequest) -> dict[str, object]:
    now = timezone.now()
    return {
        "processors": [
            present_processor(p, now)
            for p in Processor.objects.select_related("breaker").order_by("priority", "name")
        ],
        "events": ProcessorEvent.objects.order_by("-id")[:20],
        "outages": [
            present_outage(o)
            for o in ProcessorOutage.objects.select_related("processor")
            .filter(ends_at__gt=now - timedelta(hours=1))
            .order_by("-starts_at")[:20]
        ],
        "can_act": can_operate(request.user),
        "now": int(now.timestamp()),
    }


@require_http_methods(["GET"])
@role_required(any_role)
def processor_list(request: HttpRequest) -> HttpResponse:
    template = f"{TEMPLATE}#processor-board" if request.htmx else TEMPLATE  # type: ignore[attr-defined]
    response = render(request, template, _context(request))
    response["Vary"] = "HX-Request"
    return response


@require_POST
@role_required(lambda user: can_operate(user))
def processor_action(request: HttpRequest, name: str) -> HttpResponse:
    action = request.POST.get("action", "")
    error = None
    try:
        if action == "force_open":
            processors.processor_breaker_force_open(name=name)
        elif action == "reset":
            processors.processor_breaker_reset(name=name)
        elif action in ("outage", "brownout"):
            processors.processor_outage_schedule_for(
                name=name,
                minutes=5,
                kind=action,
                latency_multiplier_pct=100 if action == "outage" else 300,
            )
        else:
            error = f"Unknown action: {action}"
    except PayLabError as failure:
        error = failure.message
    if request.htmx:  # type: ignore[attr-defined]
        context = {**_context(request), "error": error}
        return render(request, f"{TEMPLATE}#processor-board", context, status=400 if error else 200)
    return redirect("payments:processors")
