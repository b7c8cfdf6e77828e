"""The Simulator page with the cast: acting users start and stop, viewers
watch, another merchant's runs are 404."""

from __future__ import annotations

import pytest

from accounts.models import User
from simulator import services
from simulator.models import RunStatus, SimulationRun
from tests.conftest import MerchantWithKey, logged_in

pytestmark = pytest.mark.django_db

FORM = {"scenario": "steady", "rate": "5", "duration": "2", "seed": "3"}


def test_an_owner_starts_a_run_from_the_form(owner_a: User, merchant_a: MerchantWithKey) -> None:
    client = logged_in(owner_a)
    page = client.get("/simulator/")
    assert page.status_code == 200
    assert "Start a run" in page.content.decode()

    response = client.post("/simulator/", {**FORM, "merchant": merchant_a.merchant.pk})

    assert response.status_code == 302
    run = SimulationRun.objects.get()
    assert (run.merchant, run.started_by, run.started_via) == (
        merchant_a.merchant,
        owner_a,
        "dashboard",
    )
    partial = client.get("/simulator/runs/", HTTP_HX_REQUEST="true")
    assert run.id in partial.content.decode()
    assert 'id="sim-runs"' in partial.content.decode()


@pytest.mark.parametrize("who", ["viewer_a", "viewer_user"])
def test_viewers_watch_but_cannot_start_or_stop(
    who: str, request: pytest.FixtureRequest, merchant_a: MerchantWithKey
) -> None:
    user = request.getfixturevalue(who)
    run = services.simulation_run_create(
        merchant=merchant_a.merchant, scenario="steady", enqueue=False
    )
    client = logged_in(user)

    page = client.get("/simulator/")
    assert page.status_code == 200
    assert "Start a run" not in page.content.decode()
    assert run.id in page.content.decode()
    assert (
        client.post("/simulator/", {**FORM, "merchant": merchant_a.merchant.pk}).status_code == 403
    )
    assert client.post(f"/simulator/runs/{run.id}/stop").status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_another_merchants_run_is_404_and_not_shown(
    owner_b: User, merchant_a: MerchantWithKey
) -> None:
    run = services.simulation_run_create(
        merchant=merchant_a.merchant, scenario="steady", enqueue=False
    )
    client = logged_in(owner_b)

    assert run.id not in client.get("/simulator/").content.decode()
    assert client.post(f"/simulator/runs/{run.id}/stop").status_code == 404


def test_an_operator_stops_a_run(operator_user: User, merchant_a: MerchantWithKey) -> None:
    run = services.simulation_run_create(
        merchant=merchant_a.merchant, scenario="steady", enqueue=False
    )

    response = logged_in(operator_user).post(
        f"/simulator/runs/{run.id}/stop", HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
