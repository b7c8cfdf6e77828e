"""/v1/simulator/processors and the `processors` command."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from payments.models import Processor, ProcessorEvent
from tests.conftest import MerchantWithKey

pytestmark = pytest.mark.django_db


def test_the_list_shows_every_processor_with_its_breaker(merchant_a: MerchantWithKey) -> None:
    body = merchant_a.api().get("/v1/simulator/processors").json()

    assert [p["id"] for p in body["data"]] == ["swift", "ironbank", "monsoon"]
    assert {p["circuit_breaker"]["state"] for p in body["data"]} == {"closed"}


def test_force_open_and_reset_over_the_api(merchant_a: MerchantWithKey) -> None:
    api = merchant_a.api()

    opened = api.post("/v1/simulator/processors/swift/force_open", {}, format="json").json()
    assert opened["circuit_breaker"]["state"] == "open"
    assert opened["circuit_breaker"]["forced_open"] is True

    closed = api.post("/v1/simulator/processors/swift/reset", {}, format="json").json()
    assert closed["circuit_breaker"]["state"] == "closed"
    assert ProcessorEvent.objects.filter(processor="swift").count() == 2


def test_an_outage_is_scheduled_and_listed(merchant_a: MerchantWithKey) -> None:
    api = merchant_a.api()

    created = api.post(
        "/v1/simulator/processor_outages",
        {
            "processor": "monsoon",
            "kind": "brownout",
            "duration_seconds": 60,
            "latency_multiplier_pct": 300,
        },
        format="json",
    )

    assert created.status_code == 200
    assert created.json()["error_rate_bp"] == 2000
    listed = api.get("/v1/simulator/processor_outages").json()
    assert [o["processor"] for o in listed["data"]] == ["monsoon"]


def test_an_unknown_processor_is_a_404(merchant_a: MerchantWithKey) -> None:
    response = merchant_a.api().post("/v1/simulator/processors/nope/reset", {}, format="json")

    assert response.status_code == 404


def test_the_command_exports_and_imports(tmp_path: Path) -> None:
    out = StringIO()
    call_command("processors", "export", stdout=out)
    document = json.loads(out.getvalue())
    document["processors"][0]["enabled"] = False
    path = tmp_path / "processors.json"
    path.write_text(json.dumps(document))

    call_command("processors", "import", str(path), stdout=StringIO())

    assert Processor.objects.get(name=document["processors"][0]["name"]).enabled is False
