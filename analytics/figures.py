"""Plotly figures of the overview, built server-side.

Each function returns a Plotly figure as JSON (`plotly.io.to_json`), which
the page hands to the vendored plotly.js (static/js/analytics.js calls
`Plotly.react`). The figures are plain figure dicts of numbers and strings
serialised with the standard library, without validation: building
`plotly.graph_objects.Figure`s validates every property and costs 5-30 ms
per figure, and even `plotly.io.to_json(validate=False)` encodes twice
(≈1 ms a figure), which together would eat most of the overview's 50 ms;
the tests build each one with `go.Figure(...)` so a typo in a property
still fails loudly.

Colours: backgrounds are transparent and the text colour is applied by the
browser from the theme's CSS variables, so one figure reads in light and
dark mode.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from analytics import selectors
from payments import money

# Readable on both the light and the dark surface.
PALETTE = ["#4f46e5", "#0ea5a4", "#f59e0b", "#ef4444", "#8b5cf6", "#10b981", "#ec4899", "#64748b"]
OK, ERR, WARN, INFO = "#10b981", "#ef4444", "#f59e0b", "#4f46e5"


def _layout(**extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "autosize": True,
        "height": 260,
        "margin": {"l": 48, "r": 12, "t": 8, "b": 36},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"size": 12},
        "colorway": PALETTE,
        "showlegend": False,
        "hovermode": "x unified",
        "xaxis": {"showgrid": False, "zeroline": False},
        "yaxis": {"zeroline": False, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.2},
    }
    layout.update(extra)
    return layout


def to_json(data: Sequence[dict[str, Any]], layout: dict[str, Any]) -> str:
    figure = {"data": list(data), "layout": layout}
    # `<` would let a label close the <script> it is embedded in.
    # allow_nan=False: NaN is not JSON (rates are None when undefined).
    return json.dumps(figure, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _times(ov: selectors.Overview) -> list[str]:
    return [selectors.Window.at(b).isoformat() for b in ov.buckets]


def _major(amount: int, currency: str) -> float:
    """Minor units as a major-unit number, for chart axes only (display)."""
    try:
        return amount / 10 ** money.exponent(currency)
    except ValueError:
        return amount / 100


def volume(ov: selectors.Overview) -> str:
    y = [_major(v, ov.currency) for v in ov.series["volume"]]
    return to_json(
        [
            {
                "type": "bar",
                "x": _times(ov),
                "y": y,
                "name": ov.currency.upper(),
                "marker": {"color": INFO},
            }
        ],
        _layout(yaxis={"title": {"text": ov.currency.upper()}, "rangemode": "tozero"}),
    )


def counts(ov: selectors.Overview) -> str:
    x = _times(ov)
    return to_json(
        [
            {
                "type": "bar",
                "x": x,
                "y": ov.series["succeeded"],
                "name": "succeeded",
                "marker": {"color": OK},
            },
            {
                "type": "bar",
                "x": x,
                "y": ov.series["failed"],
                "name": "failed",
                "marker": {"color": ERR},
            },
        ],
        _layout(barmode="stack", showlegend=True),
    )


def success_rate(ov: selectors.Overview) -> str:
    y = [
        None if not (s + f) else round(100 * s / (s + f), 2)
        for s, f in zip(ov.series["succeeded"], ov.series["failed"], strict=True)
    ]
    return to_json(
        [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": _times(ov),
                "y": y,
                "name": "success rate",
                "connectgaps": False,
                "line": {"color": OK, "width": 2},
                "marker": {"size": 4},
            }
        ],
        _layout(yaxis={"ticksuffix": "%", "range": [0, 100.5]}),
    )


def refunds_disputes(ov: selectors.Overview) -> str:
    x = _times(ov)
    return to_json(
        [
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": ov.series["refunds"],
                "name": "refunds",
                "line": {"color": WARN},
            },
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": ov.series["disputes"],
                "name": "disputes",
                "line": {"color": ERR},
            },
        ],
        _layout(showlegend=True),
    )


def failure_reasons(reasons: list[tuple[str, int]]) -> str:
    top = list(reversed(reasons[:10]))
    return to_json(
        [
            {
                "type": "bar",
                "orientation": "h",
                "x": [n for _, n in top],
                "y": [code.replace("_", " ") for code, _ in top],
                "marker": {"color": ERR},
            }
        ],
        _layout(hovermode="closest", margin={"l": 150, "r": 12, "t": 8, "b": 36}),
    )


def _donut(labels: list[str], values: list[int]) -> str:
    return to_json(
        [
            {
                "type": "pie",
                "hole": 0.55,
                "labels": labels,
                "values": values,
                "sort": False,
                "textinfo": "percent",
                "marker": {"colors": PALETTE},
            }
        ],
        _layout(showlegend=True, hovermode="closest", legend={"orientation": "v", "x": 1}),
    )


def statuses(distribution: list[tuple[str, int]]) -> str:
    return _donut([s.replace("_", " ") for s, _ in distribution], [n for _, n in distribution])


def currency_mix(currencies: dict[str, dict[str, int]]) -> str:
    return _donut([c.upper() for c in currencies], [v["count"] for v in currencies.values()])


def brands(mix: list[dict[str, Any]]) -> str:
    labels = [
        c["brand"] if c["brand"] == c["method"] else f"{c['brand']} ({c['method']})" for c in mix
    ]
    return to_json(
        [
            {
                "type": "bar",
                "x": labels,
                "y": [c["succeeded"] + c["failed"] for c in mix],
                "name": "payments",
                "marker": {"color": INFO},
            },
            {
                "type": "scatter",
                "mode": "markers",
                "x": labels,
                "y": [None if c["rate"] is None else round(100 * c["rate"], 2) for c in mix],
                "name": "approval rate",
                "yaxis": "y2",
                "marker": {"color": OK, "size": 10},
            },
        ],
        _layout(
            showlegend=True,
            hovermode="closest",
            yaxis2={"overlaying": "y", "side": "right", "ticksuffix": "%", "range": [0, 100.5]},
        ),
    )


def sparkline(
    values: Sequence[float | None],
    *,
    label: str,
    low: float = 0.0,
    high: float | None = None,
    colour: str = INFO,
) -> str:
    """A small inline SVG line of `values` (None: a gap), for tables that
    refresh every few seconds, where a Plotly chart per cell would be heavy.
    `label` is what a screen reader says instead."""
    width, height, pad = 120.0, 28.0, 2.0
    known = [v for v in values if v is not None]
    top = high if high is not None else max(known, default=1.0)
    span = (top - low) or 1.0
    step = width / max(len(values) - 1, 1)
    segments: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        y = height - pad - (min(max(value, low), top) - low) / span * (height - 2 * pad)
        segments[-1].append(f"{index * step:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline points="{" ".join(points)}" />'
        if len(points) > 1
        else f'<circle cx="{points[0].split(",")[0]}" cy="{points[0].split(",")[1]}" r="1.5" />'
        for points in segments
        if points
    )
    # `label` is built by the page from numbers and processor names; escaped all the same.
    safe = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (
        f'<svg class="sparkline" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img" aria-label="{safe}" fill="{colour}" stroke="{colour}">'
        f'<title>{safe}</title><line class="base" x1="0" y1="{height - pad:.0f}" '
        f'x2="{width:.0f}" y2="{height - pad:.0f}" />{lines}</svg>'
    )


def processors(stats: list[selectors.ProcessorStats]) -> str:
    names = [s.name for s in stats]
    return to_json(
        [
            {
                "type": "bar",
                "x": names,
                "y": [None if s.rate is None else round(100 * s.rate, 2) for s in stats],
                "name": "success rate",
                "marker": {"color": OK},
            },
            *(
                {
                    "type": "scatter",
                    "mode": "markers+lines",
                    "x": names,
                    "y": [getattr(s, q) for s in stats],
                    "name": f"{q} latency",
                    "yaxis": "y2",
                    "marker": {"size": 8},
                }
                for q in ("p50", "p95", "p99")
            ),
        ],
        _layout(
            showlegend=True,
            hovermode="closest",
            yaxis={"ticksuffix": "%", "range": [0, 100.5]},
            yaxis2={"overlaying": "y", "side": "right", "ticksuffix": " ms", "rangemode": "tozero"},
        ),
    )


def customers(top: list[selectors.CustomerVolume], currency: str) -> str:
    rows = list(reversed(top))
    return to_json(
        [
            {
                "type": "bar",
                "orientation": "h",
                "x": [_major(c.amount, currency) for c in rows],
                "y": [c.label for c in rows],
                "marker": {"color": INFO},
            }
        ],
        _layout(hovermode="closest", margin={"l": 170, "r": 12, "t": 8, "b": 36}),
    )


def bins(stats: list[selectors.BinStats]) -> str:
    labels = [f"{s.bin} {s.brand}" for s in stats]
    return to_json(
        [
            {
                "type": "bar",
                "x": labels,
                "y": [None if s.rate is None else round(100 * s.rate, 2) for s in stats],
                "text": [f"{s.succeeded + s.failed}" for s in stats],
                "hovertemplate": "%{x}: %{y}% of %{text}<extra></extra>",
                "marker": {"color": OK},
            }
        ],
        _layout(hovermode="closest", yaxis={"ticksuffix": "%", "range": [0, 100.5]}),
    )
