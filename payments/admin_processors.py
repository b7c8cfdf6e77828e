"""Admin for the simulated processors: profiles and routing rules are
editable; breakers are read-only with force-open / reset actions (through
the services, so each change is a ProcessorEvent); outages can be
scheduled; processor events are append-only and read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from payments import processing
from payments.models import (
    Processor,
    ProcessorBreaker,
    ProcessorEvent,
    ProcessorOutage,
    RoutingRule,
)
from payments.services import processors


class BreakerInline(admin.StackedInline):
    model = ProcessorBreaker
    can_delete = False
    fields = ("state", "data", "changed_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Processor)
class ProcessorAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "enabled",
        "priority",
        "latency_p50_ms",
        "latency_p99_ms",
        "timeout_rate_bp",
        "unavailable_rate_bp",
        "soft_decline_rate_bp",
        "breaker_state",
    )
    list_editable = ("enabled", "priority")
    inlines = [BreakerInline]
    actions = ["force_open", "reset_breaker"]

    @admin.display(description="breaker")
    def breaker_state(self, obj: Processor) -> str:
        breaker = getattr(obj, "breaker", None)
        return breaker.state if breaker else "closed"

    def save_model(self, request: HttpRequest, obj: Processor, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        ProcessorBreaker.objects.get_or_create(processor=obj)
        processing.invalidate()

    @admin.action(description="Force the circuit breaker open")
    def force_open(self, request: HttpRequest, queryset: QuerySet[Processor]) -> None:
        for processor in queryset:
            processors.processor_breaker_force_open(name=processor.name)
        messages.success(request, f"Forced open: {', '.join(p.name for p in queryset)}")

    @admin.action(description="Reset the circuit breaker")
    def reset_breaker(self, request: HttpRequest, queryset: QuerySet[Processor]) -> None:
        for processor in queryset:
            processors.processor_breaker_reset(name=processor.name)
        messages.success(request, f"Reset: {', '.join(p.name for p in queryset)}")


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "position",
        "enabled",
        "currencies",
        "methods",
        "bin_prefixes",
        "targets",
    )
    list_editable = ("position", "enabled")
    filter_horizontal = ("merchants",)

    def save_model(self, request: HttpRequest, obj: RoutingRule, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        processing.invalidate()


@admin.register(ProcessorOutage)
class ProcessorOutageAdmin(admin.ModelAdmin):
    list_display = (
        "processor",
        "kind",
        "starts_at",
        "ends_at",
        "error_rate_bp",
        "latency_multiplier_pct",
    )
    list_filter = ("kind", "processor")


@admin.register(ProcessorEvent)
class ProcessorEventAdmin(admin.ModelAdmin):
    list_display = ("id", "created", "processor", "type", "from_state", "to_state", "reason")
    list_filter = ("type", "processor")
    fields = ("id", "created", "processor", "type", "from_state", "to_state", "reason", "data")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
