"""The simulator's API objects, in the Stripe dialect of /v1/ (`simrun_…`)."""

from __future__ import annotations

from typing import Any

from payments.presenters import ts
from simulator import scenarios, selectors, services
from simulator.models import SimulationRun


def scenario(name: str) -> dict[str, Any]:
    item = scenarios.get(name)
    return {
        "id": item.name,
        "object": "simulation_scenario",
        "name": item.title,
        "description": item.description,
        "parameters": services.scenario_parameters(item.name),
    }


def simulation_run(run: SimulationRun) -> dict[str, Any]:
    p = selectors.progress(run)
    params = {k: v for k, v in run.params.items() if not k.startswith("_")}
    return {
        "id": run.id,
        "object": "simulation_run",
        "scenario": run.scenario,
        "status": run.status,
        "parameters": params,
        "seed": run.seed,
        "merchants": params.get("merchants", []),
        "slices": run.slice_count,
        "planned": run.planned,
        "progress": {
            "operations": p.done,
            "fraction": round(p.fraction, 4),
            "follow_ups_pending": p.follow_ups_pending,
            "elapsed_seconds": round(p.elapsed, 3),
            "actual_rate": p.actual_rate,
        },
        "counters": p.counters,
        "failures": p.failures,
        "notes": run.notes,
        "error": run.error or None,
        "started_via": run.started_via,
        "created": ts(run.created),
        "started_at": ts(run.started_at),
        "stop_requested_at": ts(run.stop_requested_at),
        "finished_at": ts(run.finished_at),
        "livemode": False,
    }
