"""The Simulator dashboard page and the webhook sink of the webhook_outage scenario.

Staff see every run, merchant users their own merchant's; operators and
acting merchant users (owner, developer) start and stop runs; viewers
watch. The runs table is a partial polled every second.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts import roles
from accounts import selectors as account_selectors
from config.errors import PayLabError
from simulator import scenarios, selectors, services
from simulator.forms import StartRunForm
from simulator.models import RunStatus, SimulationRun

TEMPLATE = "simulator/simulator.html"


def _runs_context(request: HttpRequest) -> dict[str, object]:
    scope = roles.merchant_scope(request.user)
    runs = list(selectors.runs(scope).select_related("merchant")[:25])
    return {
        "runs": [
            {
                "run": run,
                "progress": selectors.progress(run),
                "may_stop": run.is_active and roles.can_operate(request.user, run.merchant_id),
            }
            for run in runs
        ],
        "polling": any(run.is_active for run in runs),
    }


@roles.role_required(roles.any_role)
@require_http_methods(["GET", "POST"])
def simulator_page(request: HttpRequest) -> HttpResponse:
    merchants = account_selectors.merchants_for_user(request.user)
    may_start = roles.can_operate(request.user)
    form = StartRunForm(
        request.POST or None, merchants=merchants, initial={"merchant": merchants.first()}
    )
    error = ""
    status = 200
    if request.method == "POST":
        if not may_start:
            raise PermissionDenied
        if form.is_valid():
            merchant = form.cleaned_data["merchant"]
            if not roles.can_operate(request.user, merchant.pk):
                raise Http404("No such merchant.")
            try:
                services.simulation_run_create(
                    merchant=merchant,
                    scenario=form.cleaned_data["scenario"],
                    params=form.parameters(),
                    started_by=request.user,  # type: ignore[arg-type]
                    started_via="dashboard",
                    own_merchant_only=roles.merchant_scope(request.user) is not None,
                )
            except PayLabError as exc:
                error = exc.message
                status = 400
            else:
                if not request.htmx:  # type: ignore[attr-defined]
                    return redirect("simulator:page")
                form = StartRunForm(merchants=merchants, initial={"merchant": merchant})
        else:
            status = 400
    context = {
        "form": form,
        "may_start": may_start,
        "error": error,
        "scenarios": list(scenarios.SCENARIOS.values()),
        **_runs_context(request),
    }
    template = f"{TEMPLATE}#sim-console" if request.htmx else TEMPLATE  # type: ignore[attr-defined]
    response = render(request, template, context, status=status)
    response["Vary"] = "HX-Request"
    return response


@roles.role_required(roles.any_role)
def runs_partial(request: HttpRequest) -> HttpResponse:
    return render(request, f"{TEMPLATE}#sim-runs", _runs_context(request))


@roles.role_required(roles.any_role)
@require_POST
def run_stop(request: HttpRequest, run_id: str) -> HttpResponse:
    run = selectors.get_run(run_id, roles.merchant_scope(request.user))
    if run is None:
        raise Http404("No such simulation run.")
    if not roles.can_operate(request.user, run.merchant_id):
        raise PermissionDenied
    services.simulation_run_stop(run_id=run.pk)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, f"{TEMPLATE}#sim-runs", _runs_context(request))
    return redirect("simulator:page")


@csrf_exempt
@require_POST
def webhook_sink(request: HttpRequest, merchant_id: int) -> HttpResponse:
    """Where the webhook_outage scenario's endpoint points: 503 while a
    running run of this merchant has its webhooks "down", 200 otherwise. It
    reads nothing of the payload: it only plays a merchant's server. (Few
    runs are ever running, so they are filtered here rather than with a JSON
    containment lookup SQLite lacks.)"""
    down = any(
        (run.state or {}).get("webhooks_down") and merchant_id in run.merchant_ids
        for run in SimulationRun.objects.filter(status=RunStatus.RUNNING).only(
            "state", "merchant_ids"
        )
    )
    return HttpResponse(
        "down" if down else "ok", status=503 if down else 200, content_type="text/plain"
    )
