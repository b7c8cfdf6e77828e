"""The Processors dashboard page: every simulated processor with its
breaker state, success-rate and latency sparklines of the last hour,
recent breaker events and scheduled outages; operators force a breaker
open, reset it, edit a processor's settings and schedule an outage or a
brownout.

Processors belong to no merchant, so every role may look; only operators
act (`can_operate`). The sparklines are the user's own traffic (a
merchant user sees its merchant's payments only). The board refreshes
itself every 2 s (htmx); the forms sit outside it, so a refresh never
wipes what an operator is typing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from accounts import roles
from accounts.roles import any_role, can_operate, role_required
from analytics import figures
from analytics import selectors as analytics
from config.errors import PayLabError
from payments.api.processors import present_outage, present_processor
from payments.dashboard.processor_forms import OutageForm, ProcessorSettingsForm
from payments.models import Processor, ProcessorEvent, ProcessorOutage
from payments.services import processors

TEMPLATE = "payments/processors.html"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _health(request: HttpRequest, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per processor: the last hour's success rate and p50 latency as
    sparklines, and the hour's figures beside them."""
    scope_id = roles.merchant_scope(request.user)
    scope = analytics.Scope(
        merchant_ids=None if scope_id is None else (scope_id,),
        window=analytics.Window.last("1h"),
    )
    trends = analytics.processor_trends(scope)
    health: dict[str, dict[str, Any]] = {}
    for name in names:
        trend = trends.get(name)
        if trend is None or not trend.succeeded + trend.failed:
            health[name] = {"payments": 0}
            continue
        rates = [None if r is None else 100 * r for r in trend.success_rate]
        health[name] = {
            "payments": trend.succeeded + trend.failed,
            "rate": _percent(trend.rate),
            "p50": _ms(analytics.percentile(trend.histogram, 0.5)),
            "p99": _ms(trend.p99),
            "rate_line": mark_safe(  # noqa: S308 — built from numbers; the label is escaped
                figures.sparkline(
                    rates,
                    low=0,
                    high=100,
                    colour=figures.OK,
                    label=f"{name}: success rate per minute, last hour; {_percent(trend.rate)}",
                )
            ),
            "latency_line": mark_safe(  # noqa: S308
                figures.sparkline(
                    trend.p50,
                    label=f"{name}: median latency per minute, last hour",
                )
            ),
        }
    return health


def _board(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    now = timezone.now()
    rows = list(Processor.objects.select_related("breaker").order_by("priority", "name"))
    health = _health(request, [p.name for p in rows])
    return {
        "processors": [{**present_processor(p, now), "health": health[p.name]} for p in rows],
        "events": ProcessorEvent.objects.order_by("-id")[:20],
        "outages": [
            {**present_outage(o), "starts": o.starts_at, "ends": o.ends_at}
            for o in ProcessorOutage.objects.select_related("processor")
            .filter(ends_at__gt=now - timedelta(hours=1))
            .order_by("-starts_at")[:20]
        ],
        "can_act": can_operate(request.user),
        "now": now,
        **extra,
    }


def _rows() -> list[Processor]:
    return list(Processor.objects.order_by("priority", "name"))


def _forms(
    rows: list[Processor], *, bound: ProcessorSettingsForm | None = None, name: str = ""
) -> list[tuple[Processor, ProcessorSettingsForm]]:
    return [
        (
            p,
            bound
            if bound is not None and p.name == name
            else ProcessorSettingsForm.for_processor(p),
        )
        for p in rows
    ]


def _outage_form(data: Any = None) -> OutageForm:
    return OutageForm(data, names=list(Processor.objects.values_list("name", flat=True)))


@require_http_methods(["GET"])
@role_required(any_role)
def processor_list(request: HttpRequest) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        response = render(request, f"{TEMPLATE}#processor-board", _board(request))
    else:
        context = {**_board(request), "settings": _forms(_rows()), "outage_form": _outage_form()}
        response = render(request, TEMPLATE, context)
    response["Vary"] = "HX-Request"
    return response


def _after_action(
    request: HttpRequest, partial: str, context: dict[str, Any], *, error: bool
) -> HttpResponse:
    """htmx: the region that changed; a plain form post: the page again
    (with the error shown) or a redirect to it."""
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, f"{TEMPLATE}#{partial}", context, status=400 if error else 200)
    if error:
        page = {**_board(request), "settings": _forms(_rows()), "outage_form": _outage_form()}
        return render(request, TEMPLATE, {**page, **context}, status=400)
    return redirect("payments:processors")


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
    return _after_action(
        request, "processor-board", _board(request, error=error), error=error is not None
    )


@require_POST
@role_required(lambda user: can_operate(user))
def processor_settings(request: HttpRequest, name: str) -> HttpResponse:
    """Save one processor's settings; the settings section comes back with
    the saved values or the refused field's error beside it."""
    processor = Processor.objects.filter(name=name).first()
    if processor is None:
        raise Http404("No such processor.")
    form = ProcessorSettingsForm.for_processor(processor, request.POST)
    if form.is_valid():
        try:
            processors.processor_update(
                name=name, changes=form.changes(processor), actor=str(request.user)
            )
        except PayLabError as failure:
            form.add_error(failure.param if failure.param in form.fields else None, failure.message)
        else:
            context = {"settings": _forms(_rows()), "saved": name, "can_act": True}
            return _after_action(request, "processor-settings", context, error=False)
    context = {"settings": _forms(_rows(), bound=form, name=name), "can_act": True}
    return _after_action(request, "processor-settings", context, error=True)


@require_POST
@role_required(lambda user: can_operate(user))
def outage_schedule(request: HttpRequest) -> HttpResponse:
    """Schedule an outage or brownout from the form; the board shows it at
    its next refresh, and routing and breakers react from its start."""
    form = _outage_form(request.POST)
    scheduled = None
    if form.is_valid():
        data = form.cleaned_data
        starts, ends = form.window(timezone.now())
        try:
            scheduled = processors.processor_outage_schedule(
                name=data["processor"],
                starts_at=starts,
                ends_at=ends,
                kind=data["kind"],
                error_rate_bp=data["error_rate_bp"],
                error_code=data["error_code"],
                latency_multiplier_pct=data["latency_multiplier_pct"],
                note=f"scheduled by {request.user}",
            )
        except PayLabError as failure:
            form.add_error(failure.param if failure.param in form.fields else None, failure.message)
    context = {
        "outage_form": _outage_form() if scheduled else form,
        "scheduled": scheduled,
        "can_act": True,
    }
    return _after_action(request, "outage-form", context, error=scheduled is None)
