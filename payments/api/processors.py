"""/v1/simulator/processors: the simulated processors, their circuit
breakers and scheduled outages (PayLab only, in Stripe's style).

Processors are PayLab's shared sandbox infrastructure, not a merchant's
objects: every key reads the same list, and — PayLab being a simulator —
any test key may force a breaker open, reset it or schedule an outage, as
an operator does from the dashboard. Each change is a ProcessorEvent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request

from payments import processing
from payments.api import schema
from payments.api.base import Body, StripeApi
from payments.api.serializers import StripeSerializer
from payments.errors import missing
from payments.models import Processor, ProcessorOutage
from payments.processors import breaker
from payments.services import processors

Params = dict[str, Any]


def present_processor(processor: Processor, now: datetime | None = None) -> Body:
    state = breaker.BreakerState.from_dict(
        getattr(processor, "breaker", None) and processor.breaker.data
    )
    seconds = (now or datetime.now(UTC)).timestamp()
    config = processing.breaker_config(processor)
    return {
        "id": processor.name,
        "object": "simulator.processor",
        "display_name": processor.display_name,
        "description": processor.description,
        "enabled": processor.enabled,
        "priority": processor.priority,
        "methods": list(processor.methods or []),
        "currencies": list(processor.currencies or []),
        "min_amount": processor.min_amount,
        "max_amount": processor.max_amount,
        "latency": {"p50_ms": processor.latency_p50_ms, "p99_ms": processor.latency_p99_ms},
        "rates_bp": {
            "soft_decline": processor.soft_decline_rate_bp,
            "timeout": processor.timeout_rate_bp,
            "processor_unavailable": processor.unavailable_rate_bp,
        },
        "timeout_ms": processor.timeout_ms,
        "fees": processor.fees,
        "authorization_lifetime_hours": processor.authorization_lifetime_hours,
        "circuit_breaker": {
            "state": breaker.peek(state, seconds, config),
            "forced_open": state.forced_open,
            "recent_failures": len(
                [t for t in state.failures if t > seconds - config.window_seconds]
            ),
            "opened_at": int(state.opened_at) if state.opened_at else None,
            "failure_threshold": config.failure_threshold,
            "failure_rate_bp": round(config.failure_rate * 10_000),
            "window_seconds": int(config.window_seconds),
            "open_seconds": int(config.open_seconds),
            "close_after_successes": config.close_after_successes,
        },
    }


def present_outage(outage: ProcessorOutage) -> Body:
    return {
        "id": outage.pk,
        "object": "simulator.processor_outage",
        "processor": outage.processor.name,
        "kind": outage.kind,
        "starts_at": int(outage.starts_at.timestamp()),
        "ends_at": int(outage.ends_at.timestamp()),
        "error_rate_bp": outage.error_rate_bp,
        "error_code": outage.error_code,
        "latency_multiplier_pct": outage.latency_multiplier_pct,
        "note": outage.note,
    }


def _processor(name: str) -> Processor:
    found = Processor.objects.select_related("breaker").filter(name=name).first()
    if found is None:
        raise missing("processor", name)
    return found


class BreakerSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=[breaker.CLOSED, breaker.OPEN, breaker.HALF_OPEN])
    forced_open = serializers.BooleanField()
    recent_failures = serializers.IntegerField()
    opened_at = serializers.IntegerField(allow_null=True)
    failure_threshold = serializers.IntegerField(
        help_text="Failures within the window that open the breaker…"
    )
    failure_rate_bp = serializers.IntegerField(
        help_text="…when they are at least this share of the window's attempts "
        "(basis points; 0: the count alone)."
    )
    window_seconds = serializers.IntegerField()
    open_seconds = serializers.IntegerField()
    close_after_successes = serializers.IntegerField()


class ProcessorSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The processor's name.")
    object = serializers.CharField(help_text="`simulator.processor`")
    display_name = serializers.CharField()
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    priority = serializers.IntegerField()
    methods = serializers.ListField(child=serializers.CharField())
    currencies = serializers.ListField(child=serializers.CharField())
    min_amount = serializers.IntegerField()
    max_amount = serializers.IntegerField()
    latency = serializers.JSONField(help_text="`{p50_ms, p99_ms}` (log-normal).")
    rates_bp = serializers.JSONField(help_text="Failure rates in basis points.")
    timeout_ms = serializers.IntegerField()
    fees = serializers.JSONField(help_text="`{default|<currency>: {percent_bp, fixed}}`")
    authorization_lifetime_hours = serializers.IntegerField()
    circuit_breaker = BreakerSerializer()


class OutageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    object = serializers.CharField(help_text="`simulator.processor_outage`")
    processor = serializers.CharField()
    kind = serializers.ChoiceField(choices=ProcessorOutage.Kind.values)
    starts_at = serializers.IntegerField()
    ends_at = serializers.IntegerField()
    error_rate_bp = serializers.IntegerField()
    error_code = serializers.CharField()
    latency_multiplier_pct = serializers.IntegerField()
    note = serializers.CharField()


class NoParamsSerializer(StripeSerializer):
    pass


class OutageCreateSerializer(StripeSerializer):
    processor = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=ProcessorOutage.Kind.values, required=False)
    starts_at = serializers.IntegerField(required=False, help_text="Unix seconds; default now.")
    ends_at = serializers.IntegerField(required=False)
    duration_seconds = serializers.IntegerField(required=False, min_value=1, max_value=86_400)
    error_rate_bp = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    error_code = serializers.ChoiceField(choices=list(processing.RETRYABLE), required=False)
    latency_multiplier_pct = serializers.IntegerField(
        required=False, min_value=100, max_value=10_000
    )
    note = serializers.CharField(max_length=200, required=False, allow_blank=True)


def _list(request: Request, data: list[Body]) -> Body:
    return {"object": "list", "data": data, "has_more": False, "url": request.path}


@extend_schema_view(
    get=schema.operation(
        "ListProcessors",
        summary="List the simulated processors",
        description="Every processor with its profile and its circuit breaker's state.",
        tag="Simulator",
        response=schema.list_of(ProcessorSerializer),
    )
)
class ProcessorCollectionApi(StripeApi):
    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        rows = Processor.objects.select_related("breaker").order_by("priority", "name")
        return 200, _list(request, [present_processor(p) for p in rows])


@extend_schema_view(
    get=schema.operation(
        "RetrieveProcessor",
        summary="Retrieve a simulated processor",
        tag="Simulator",
        path_id=("", "processor"),
        response=ProcessorSerializer,
    )
)
class ProcessorApi(StripeApi):
    def perform_get(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        return 200, present_processor(_processor(id))


@extend_schema_view(
    post=schema.operation(
        "ForceOpenProcessorBreaker",
        summary="Force a processor's circuit breaker open",
        description="Routing skips the processor until a reset. Records "
        "`paylab.processor.circuit_opened`.",
        tag="Simulator",
        request=NoParamsSerializer,
        path_id=("", "processor"),
        response=ProcessorSerializer,
        write=True,
    )
)
class ProcessorForceOpenApi(StripeApi):
    serializers = {"POST": NoParamsSerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        processors.processor_breaker_force_open(name=id)
        return 200, present_processor(_processor(id))


@extend_schema_view(
    post=schema.operation(
        "ResetProcessorBreaker",
        summary="Reset a processor's circuit breaker",
        description="Closes it and forgets its failures. Records `paylab.processor.circuit_closed`.",
        tag="Simulator",
        request=NoParamsSerializer,
        path_id=("", "processor"),
        response=ProcessorSerializer,
        write=True,
    )
)
class ProcessorResetApi(StripeApi):
    serializers = {"POST": NoParamsSerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        processors.processor_breaker_reset(name=id)
        return 200, present_processor(_processor(id))


@extend_schema_view(
    get=schema.operation(
        "ListProcessorOutages",
        summary="List scheduled processor outages and brownouts",
        tag="Simulator",
        response=schema.list_of(OutageSerializer),
    ),
    post=schema.operation(
        "ScheduleProcessorOutage",
        summary="Schedule a processor outage or brownout",
        description="An `outage` fails every request (`error_rate_bp` 10000); a `brownout` "
        "fails some (default 2000 bp) and multiplies latency. Routing fails over and the "
        "breaker opens as failures accumulate. Records `paylab.processor.outage_scheduled`.",
        tag="Simulator",
        request=OutageCreateSerializer,
        response=OutageSerializer,
        write=True,
    ),
)
class ProcessorOutageCollectionApi(StripeApi):
    serializers = {"POST": OutageCreateSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        rows = ProcessorOutage.objects.select_related("processor").order_by("-starts_at")[:100]
        return 200, _list(request, [present_outage(o) for o in rows])

    def perform_post(self, request: Request, params: Params) -> tuple[int, Body]:
        now = datetime.now(UTC)
        starts = (
            datetime.fromtimestamp(params["starts_at"], UTC) if params.get("starts_at") else now
        )
        if params.get("ends_at"):
            ends = datetime.fromtimestamp(params["ends_at"], UTC)
        else:
            ends = datetime.fromtimestamp(
                starts.timestamp() + params.get("duration_seconds", 300), UTC
            )
        outage = processors.processor_outage_schedule(
            name=params["processor"],
            starts_at=starts,
            ends_at=ends,
            kind=params.get("kind", ProcessorOutage.Kind.OUTAGE),
            error_rate_bp=params.get("error_rate_bp"),
            error_code=params.get("error_code", "processor_unavailable"),
            latency_multiplier_pct=params.get("latency_multiplier_pct", 100),
            note=params.get("note", ""),
        )
        return 200, present_outage(outage)
