"""Scenario steps that act on PayLab rather than send traffic: processor
outages and brownouts, the webhook sink going down and coming back.

Processor chaos goes through the payments processors service when it exists
(`payments.services.processors.processor_outage_schedule`, which records a
`ProcessorOutage` window that the processing seam honours). Where it does
not exist yet, the run degrades openly: the step is recorded in the run's
notes as unavailable, and the scenario's traffic window (see
`simulator.scenarios`) produces the outage's effect on payments —
processing errors — through the test cards instead.
"""

from __future__ import annotations

import importlib
import inspect
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse

from accounts.models import Merchant
from config.errors import PayLabError
from payments.models import WebhookEndpoint
from payments.services import webhooks
from simulator.models import SimulationRun

SINK_DESCRIPTION = "PayLab simulator webhook sink"


def _outage_service() -> Any:
    try:
        module = importlib.import_module("payments.services.processors")
    except ImportError:
        return None
    return getattr(module, "processor_outage_schedule", None)


def native_processor_chaos() -> bool:
    """Whether payments can schedule processor outages itself."""
    return _outage_service() is not None


def _default_processor() -> str | None:
    try:
        from payments.models.processors import Processor
    except ImportError:
        return None
    return (
        Processor.objects.filter(enabled=True)
        .order_by("priority", "name")
        .values_list("name", flat=True)
        .first()
    )


def _schedule_outage(
    run: SimulationRun,
    *,
    kind: str,
    processor: str | None,
    seconds: float,
    now: datetime,
    **extra: Any,
) -> str:
    service = _outage_service()
    if service is None:
        return (
            f"{kind}: no processor outage service in payments yet; simulated with "
            "processing-error cards in the window"
        )
    name = processor or _default_processor()
    if name is None:
        return f"{kind}: no enabled processor to act on"
    offered = {
        "name": name,
        "kind": kind,
        "starts_at": now,
        "ends_at": now + timedelta(seconds=seconds),
        "note": f"simulation {run.id}",
        **extra,
    }
    accepted = inspect.signature(service).parameters
    try:
        service(**{k: v for k, v in offered.items() if k in accepted})
    except PayLabError as error:
        return f"{kind} on {name} refused: {error.message}"
    return f"{kind} on {name} for {seconds:.0f} s"


def _sink_url(merchant: Merchant) -> str:
    base = settings.PAYLAB_PUBLIC_URL.rstrip("/")
    return base + reverse("simulator:webhook_sink", kwargs={"merchant_id": merchant.pk})


def _ensure_sink(merchant: Merchant) -> str:
    existing = WebhookEndpoint.objects.filter(
        merchant=merchant, description=SINK_DESCRIPTION, deleted_at__isnull=True
    ).first()
    if existing is not None:
        return f"webhook sink endpoint {existing.pk} reused"
    try:
        endpoint = webhooks.webhook_endpoint_create(
            merchant=merchant,
            url=_sink_url(merchant),
            enabled_events=["*"],
            description=SINK_DESCRIPTION,
        )
    except PayLabError as error:
        return f"webhook sink endpoint not created: {error.message}"
    return f"webhook sink endpoint {endpoint.pk} created"


def apply_step(run: SimulationRun, action: str, args: dict[str, Any], *, now: datetime) -> str:
    """Apply one step (caller holds slice 0's transaction); the note to record.

    Mutates `run.state` for state the webhook sink reads; the caller saves it.
    """
    if action == "processor_outage":
        return _schedule_outage(
            run,
            kind="outage",
            processor=args.get("processor"),
            seconds=float(args["seconds"]),
            now=now,
        )
    if action == "processor_slow":
        return _schedule_outage(
            run,
            kind="brownout",
            processor=args.get("processor"),
            seconds=float(args.get("seconds") or run.params.get("brownout_seconds") or 30),
            now=now,
            latency_multiplier_pct=int(args.get("factor", 10)) * 100,
            error_rate_bp=1000,
        )
    if action == "processor_restore":
        # Outages are scheduled with their end; nothing to undo.
        return "processor back to normal"
    if action == "webhook_sink_ensure":
        return "; ".join(_ensure_sink(m) for m in Merchant.objects.filter(pk__in=run.merchant_ids))
    if action == "webhooks_down":
        run.state = {**run.state, "webhooks_down": True}
        return "webhook sink answering 503"
    if action == "webhooks_up":
        run.state = {**run.state, "webhooks_down": False}
        return "webhook sink answering 200 again"
    return f"unknown step {action}"
