"""/v1/simulator/scenarios and /v1/simulator/runs, in the API's dialect.

A merchant's key starts, lists and stops its own merchant's runs only:
another merchant's run is a 404, and `merchants` naming another is a 404.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_view
from rest_framework.request import Request

from payments.api import schema
from payments.api.base import Body, StripeApi, list_object
from simulator import presenters, scenarios, selectors, services
from simulator.api import serializers as s

Params = dict[str, Any]
TAG = "Simulator"


@extend_schema_view(
    get=schema.operation(
        "ListSimulationScenarios",
        summary="List simulation scenarios",
        description="The scenario library with each scenario's default parameters.",
        tag=TAG,
        response=s.SimulationScenarioListSerializer,
    ),
)
class SimulationScenarioCollectionApi(StripeApi):
    serializers = {"GET": s.EmptySerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        return 200, {
            "object": "list",
            "data": [presenters.scenario(name) for name in scenarios.SCENARIOS],
            "has_more": False,
            "url": request.path,
        }


def _present(run: Any, expand: list[str]) -> Body:
    return presenters.simulation_run(run)


@extend_schema_view(
    get=schema.operation(
        "ListSimulationRuns",
        summary="List simulation runs",
        tag=TAG,
        query=s.SimulationRunListSerializer,
        response=schema.list_of(s.SimulationRunSerializer),
    ),
    post=schema.operation(
        "CreateSimulationRun",
        summary="Start a simulation run",
        description="Queues the run's slices for the workers; traffic goes to this key's "
        "merchant through the same services the API uses.",
        tag=TAG,
        request=s.SimulationRunCreateSerializer,
        response=s.SimulationRunSerializer,
        write=True,
    ),
)
class SimulationRunCollectionApi(StripeApi):
    serializers = {"GET": s.SimulationRunListSerializer, "POST": s.SimulationRunCreateSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        query = selectors.runs(self.merchant_id(request))
        if params.get("status"):
            query = query.filter(status=params["status"])
        if params.get("scenario"):
            query = query.filter(scenario=params["scenario"])
        return 200, list_object(request, query, params, _present)

    def perform_post(self, request: Request, params: Params) -> tuple[int, Body]:
        params.pop("expand", None)
        scenario = params.pop("scenario")
        run = services.simulation_run_create(
            merchant=self.client(request).merchant,
            scenario=scenario,
            params=params,
            started_via="api",
            own_merchant_only=True,
        )
        return 200, presenters.simulation_run(run)


@extend_schema_view(
    get=schema.operation(
        "RetrieveSimulationRun",
        summary="Retrieve a simulation run",
        description="With its live counters.",
        tag=TAG,
        path_id=("simrun_", "simulation run"),
        response=s.SimulationRunSerializer,
    ),
)
class SimulationRunApi(StripeApi):
    serializers = {"GET": s.EmptySerializer}

    def perform_get(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        run = services.get_run(run_id=id, merchant_id=self.merchant_id(request))
        return 200, presenters.simulation_run(run)


@extend_schema_view(
    post=schema.operation(
        "CancelSimulationRun",
        summary="Stop a simulation run",
        description="Slices stop within a second; the run ends `canceled`. A finished run "
        "is returned as it is.",
        tag=TAG,
        request=s.EmptySerializer,
        path_id=("simrun_", "simulation run"),
        response=s.SimulationRunSerializer,
        write=True,
    ),
)
class SimulationRunCancelApi(StripeApi):
    serializers = {"POST": s.EmptySerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        run = services.simulation_run_stop(run_id=id, merchant_id=self.merchant_id(request))
        return 200, presenters.simulation_run(run)
