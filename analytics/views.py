"""The overview page: KPI cards and Plotly charts from the rollups.

One view, one template (STYLE 10): a plain GET renders the whole page; an
htmx GET (the range picker and filters) renders `#overview-body`; the live
KPI refresh asks `overview_kpis` for `#overview-kpis`. Both send
`Vary: HX-Request`. Merchant users see only their own merchant: the
merchant filter is fixed for them and another merchant's id is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers

from accounts import roles
from accounts import selectors as accounts_selectors
from analytics import figures, selectors
from payments import money


@dataclass(frozen=True)
class Params:
    range: str
    start: str
    end: str
    merchant: int | None
    processor: str
    currency: str

    def query(self) -> str:
        values = {
            "range": self.range,
            "start": self.start if self.range == "custom" else "",
            "end": self.end if self.range == "custom" else "",
            "merchant": "" if self.merchant is None else str(self.merchant),
            "processor": self.processor,
            "currency": self.currency,
        }
        return urlencode({k: v for k, v in values.items() if v})


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _scope(request: HttpRequest) -> tuple[Params, selectors.Scope, list[str]]:
    """The filters asked for, the scope they give this user, and problems."""
    get = request.GET
    errors: list[str] = []
    allowed = roles.merchant_scope(request.user)
    merchant: int | None = None
    if get.get("merchant"):
        try:
            merchant = int(get["merchant"])
        except ValueError:
            raise Http404("No such merchant.") from None
        accounts_selectors.merchant_for_user(request.user, merchant)  # 404 across merchants
    if allowed is not None:
        merchant = allowed
    name = get.get("range", selectors.DEFAULT_RANGE)
    start_text, end_text = get.get("start", ""), get.get("end", "")
    window = None
    if name == "custom":
        start, end = _parse_time(start_text), _parse_time(end_text)
        if start is None or end is None or not start < end:
            errors.append("A custom range needs a start before its end.")
        elif end - start > selectors.MAX_CUSTOM:
            errors.append("A custom range can span at most 400 days.")
        else:
            window = selectors.Window.build(start, end)
        if window is None:
            name = selectors.DEFAULT_RANGE
    elif name not in selectors.RANGES:
        name = selectors.DEFAULT_RANGE
    window = window or selectors.Window.last(name)
    params = Params(
        range=name,
        start=start_text,
        end=end_text,
        merchant=merchant,
        processor=get.get("processor", "")[:64],
        currency=get.get("currency", "").lower()[:3],
    )
    scope = selectors.Scope(
        merchant_ids=None if merchant is None else (merchant,),
        window=window,
        processor=params.processor,
        currency=params.currency,
    )
    return params, scope, errors


def _money(amount: float | int | None, currency: str) -> str:
    if amount is None:
        return "—"
    try:
        return money.format_amount(round(amount), currency)
    except ValueError:
        return f"{round(amount)} {currency.upper()}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _kpis(ov: selectors.Overview) -> list[dict[str, Any]]:
    cur, prev, c = ov.current, ov.previous, ov.currency
    change = selectors.change

    def card(
        label: str,
        value: str,
        now: float | None,
        before: float | None,
        *,
        up_is_good: bool = True,
        detail: str = "",
    ) -> dict[str, Any]:
        delta = change(now, before)
        if delta is None or abs(delta) < 0.0005:
            tone = "flat"
        else:
            tone = "good" if (delta > 0) == up_is_good else "bad"
        return {
            "label": label,
            "value": value,
            "change": None if delta is None else f"{100 * delta:+.1f}%",
            "tone": tone,
            "detail": detail,
        }

    return [
        card("Volume", _money(cur.volume, c), cur.volume, prev.volume),
        card(
            "Payments",
            f"{cur.succeeded:,}",
            cur.succeeded,
            prev.succeeded,
            detail=f"{cur.failed:,} failed",
        ),
        card(
            "Success rate",
            _percent(cur.success_rate),
            cur.success_rate,
            prev.success_rate,
        ),
        card(
            "Average ticket", _money(cur.average_ticket, c), cur.average_ticket, prev.average_ticket
        ),
        card(
            "Refunds",
            f"{cur.refunds:,}",
            cur.refunds,
            prev.refunds,
            up_is_good=False,
            detail=f"{_money(cur.refunded, c)} refunded",
        ),
        card(
            "Disputes",
            f"{cur.disputes:,}",
            cur.disputes,
            prev.disputes,
            up_is_good=False,
            detail=f"{_money(cur.disputed, c)} disputed",
        ),
    ]


def _kpi_context(params: Params, ov: selectors.Overview) -> dict[str, Any]:
    return {
        "kpis": _kpis(ov),
        "overview": ov,
        "kpis_url": reverse("analytics:overview_kpis") + "?" + params.query(),
    }


def _context(request: HttpRequest) -> dict[str, Any]:
    params, scope, errors = _scope(request)
    ov = selectors.overview(scope)
    context: dict[str, Any] = {
        "params": params,
        "errors": errors,
        "ranges": [*selectors.RANGES, "custom"],
        "merchants": accounts_selectors.merchants_for_user(request.user).order_by("name"),
        "options": selectors.filter_options(scope.merchant_ids),
        "window_start": selectors.Window.at(scope.window.start),
        "window_end": selectors.Window.at(scope.window.end),
        "grain": {60: "minute", 3600: "hour", 86400: "day"}[scope.window.grain],
        **_kpi_context(params, ov),
    }
    if ov.empty:
        return context
    parts = selectors.breakdown(scope)
    procs = selectors.processors(scope)
    top = selectors.top_customers(scope, ov.currency)
    bin_stats = selectors.bins(scope)
    statuses = selectors.status_distribution(scope)
    context.update(
        processors=procs,
        other_currencies=[cur for cur in ov.currencies if cur != ov.currency],
        charts=[
            ("volume", f"Volume ({ov.currency.upper()})", figures.volume(ov)),
            ("payments", "Payments", figures.counts(ov)),
            ("success-rate", "Success rate", figures.success_rate(ov)),
            ("failure-reasons", "Failure reasons", figures.failure_reasons(parts.failure_reasons)),
            ("statuses", "Payments by status", figures.statuses(statuses)),
            ("refunds-disputes", "Refunds and disputes", figures.refunds_disputes(ov)),
            ("processors", "Processors: success rate and latency", figures.processors(procs)),
            (
                "customers",
                f"Top customers ({ov.currency.upper()})",
                figures.customers(top, ov.currency),
            ),
            ("currencies", "Currency mix", figures.currency_mix(ov.currencies)),
            ("brands", "Method and brand mix", figures.brands(parts.brands)),
            ("bins", "Approval rate by BIN", figures.bins(bin_stats)),
        ],
    )
    return context


def _render(request: HttpRequest, partial: str | None, context: dict[str, Any]) -> HttpResponse:
    template = "analytics/overview.html"
    response = render(request, f"{template}#{partial}" if partial else template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


@roles.role_required(roles.any_role)
def overview(request: HttpRequest) -> HttpResponse:
    partial = "overview-body" if request.htmx else None  # type: ignore[attr-defined]
    return _render(request, partial, _context(request))


@roles.role_required(roles.any_role)
def overview_kpis(request: HttpRequest) -> HttpResponse:
    """The KPI cards alone: what the live refresh swaps in, at most once a second."""
    params, scope, _ = _scope(request)
    return _render(request, "overview-kpis", _kpi_context(params, selectors.kpis(scope)))
