"""/v1/simulator/…: the Stripe dialect, and tenancy with the cast (A's key,
B's key): B gets 404 on A's runs and never sees them in lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from payments.api import urls as payments_urls
from simulator.api import urls
from simulator.models import RunStatus
from tests.conftest import MerchantWithKey
from tests.payments.api.conftest import Stripe

pytestmark = pytest.mark.django_db

# (route, method, path; {run} is A's run): B gets 404 resource_missing.
MISSING = [
    ("simulation-run", "GET", "simulator/runs/{run}"),
    ("simulation-run-cancel", "POST", "simulator/runs/{run}/cancel"),
]
# Lists B reads: never A's runs.
HIDDEN = [
    ("simulation-runs", "GET", "simulator/runs"),
    ("simulation-scenarios", "GET", "simulator/scenarios"),
]
NOTHING_TO_LEAK = {("simulation-runs", "POST")}


@pytest.fixture
def stripe_a(merchant_a: MerchantWithKey) -> Stripe:
    return Stripe(merchant_a.api())


@pytest.fixture
def stripe_b(merchant_b: MerchantWithKey) -> Stripe:
    return Stripe(merchant_b.api())


def _start(stripe: Stripe, **params: object) -> dict[str, object]:
    return stripe.ok(
        stripe.post("simulator/runs", {"scenario": "steady", "rate": 5, "duration": 2, **params})
    )


def test_scenarios_are_a_list_object(stripe_a: Stripe) -> None:
    body = stripe_a.ok(stripe_a.get("simulator/scenarios"))

    assert body["object"] == "list" and body["has_more"] is False
    assert body["url"] == "/v1/simulator/scenarios"
    assert len(body["data"]) == 10
    steady = next(s for s in body["data"] if s["id"] == "steady")
    assert steady["object"] == "simulation_scenario"
    assert steady["parameters"]["rate"] == 20.0


def test_a_merchant_key_starts_a_run_for_its_own_merchant(
    stripe_a: Stripe, merchant_a: MerchantWithKey
) -> None:
    # form-encoded with bracketed mixes, as Stripe's libraries send
    run = _start(stripe_a, seed=42, outcomes={"success": 90, "generic_decline": 10})

    assert str(run["id"]).startswith("simrun_")
    assert run["object"] == "simulation_run"
    assert run["status"] == RunStatus.QUEUED
    assert run["seed"] == 42
    assert run["merchants"] == [merchant_a.merchant.slug]
    assert run["planned"] == 10
    assert run["parameters"]["outcomes"] == {"success": 90.0, "generic_decline": 10.0}
    listed = stripe_a.ok(stripe_a.get("simulator/runs"))
    assert [r["id"] for r in listed["data"]] == [run["id"]]
    assert stripe_a.ok(stripe_a.get(f"simulator/runs/{run['id']}"))["id"] == run["id"]


def test_cancel_stops_a_queued_run_at_once(stripe_a: Stripe) -> None:
    run = _start(stripe_a)

    canceled = stripe_a.ok(stripe_a.post(f"simulator/runs/{run['id']}/cancel"))

    assert canceled["status"] == RunStatus.CANCELED
    assert canceled["finished_at"] is not None


def test_errors_are_in_stripes_envelope(stripe_a: Stripe, merchant_b: MerchantWithKey) -> None:
    unknown = stripe_a.post("simulator/runs", {"scenario": "steady", "speed": 9})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "parameter_unknown"
    bad = stripe_a.post("simulator/runs", {"scenario": "nope"})
    assert bad.status_code == 400
    other = stripe_a.post(
        "simulator/runs", {"scenario": "steady", "merchants": [merchant_b.merchant.slug]}
    )
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "resource_missing"
    assert Client().get("/v1/simulator/runs").status_code == 401


def test_other_merchants_runs_are_404_and_never_listed(stripe_a: Stripe, stripe_b: Stripe) -> None:
    run = _start(stripe_a)
    _start(stripe_b)

    for name, method, template in MISSING:
        path = template.format(run=run["id"])
        response = stripe_b.get(path) if method == "GET" else stripe_b.post(path)
        assert response.status_code == 404, (name, response.content)
        assert response.json()["error"]["code"] == "resource_missing"
    for name, _, path in HIDDEN:
        assert str(run["id"]) not in stripe_b.get(path).content.decode(), name
    # and A's run is untouched
    assert stripe_a.ok(stripe_a.get(f"simulator/runs/{run['id']}"))["status"] == RunStatus.QUEUED


def test_every_route_and_method_is_in_the_tenancy_tables() -> None:
    covered = {(name, method) for name, method, _ in MISSING + HIDDEN} | NOTHING_TO_LEAK
    required = set()
    for pattern in urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        view = pattern.callback.view_class  # type: ignore[attr-defined]
        for method in view.http_method_names:
            required.add((pattern.name, method.upper()))
    assert required == covered


def _v1_routes(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _v1_routes(entry.url_patterns, route)
        elif route.startswith(("v1/", "^v1/")):
            yield route, entry


def test_every_v1_route_is_under_a_tenancy_table() -> None:
    # The tenancy tables walk payments.api.urls (tests/payments/api/test_tenancy.py)
    # and simulator.api.urls (above): a /v1 route mounted from anywhere else
    # would escape both.
    tabled = {id(p) for p in [*payments_urls.urlpatterns, *urls.urlpatterns]}
    # /v1/account names no object of any merchant; the catch-all answers 404.
    untabled = {"api-account", None}

    escaped = [
        route
        for route, pattern in _v1_routes(get_resolver().url_patterns)
        if id(pattern) not in tabled and pattern.name not in untabled
    ]

    assert escaped == []
    simulator_routes = {
        route for route, p in _v1_routes(get_resolver().url_patterns) if p in urls.urlpatterns
    }
    assert len(simulator_routes) == len(urls.urlpatterns) == 4


def test_the_schema_documents_every_route(client: Client) -> None:
    spec = client.get("/api/schema/", {"format": "json"}).json()

    for path, methods in {
        "/v1/simulator/scenarios": {"get"},
        "/v1/simulator/runs": {"get", "post"},
        "/v1/simulator/runs/{id}": {"get"},
        "/v1/simulator/runs/{id}/cancel": {"post"},
    }.items():
        assert set(spec["paths"][path]) & {"get", "post"} == methods, path
        for method in methods:
            op = spec["paths"][path][method]
            assert op["tags"] == ["Simulator"]
            assert not op["operationId"].startswith("v1_")
