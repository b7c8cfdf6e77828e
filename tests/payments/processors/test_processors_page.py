"""The Processors dashboard page: every role sees it, operators act."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import User
from payments.models import Processor, ProcessorBreaker, ProcessorEvent, ProcessorOutage
from payments.services import intents, processors
from tests.analytics.conftest import publish_and_project
from tests.conftest import MerchantWithKey, logged_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("who", ["viewer_user", "owner_a", "viewer_a"])
def test_every_role_sees_the_processors_and_their_breakers(
    who: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)

    response = logged_in(user).get("/processors/")

    assert response.status_code == 200
    text = response.content.decode()
    assert "swift" in text and "ironbank" in text and "monsoon" in text


def test_the_board_refreshes_as_a_partial(viewer_user: User) -> None:
    response = logged_in(viewer_user).get("/processors/", HTTP_HX_REQUEST="true")

    assert response.content.decode().lstrip().startswith('<div id="processor-board"')


def test_an_operator_forces_a_breaker_open_and_schedules_an_outage(operator_user: User) -> None:
    client = logged_in(operator_user)

    client.post("/processors/swift/action", {"action": "force_open"}, HTTP_HX_REQUEST="true")
    client.post("/processors/monsoon/action", {"action": "brownout"})

    assert ProcessorBreaker.objects.get(processor__name="swift").state == "open"
    assert ProcessorOutage.objects.get().kind == "brownout"


@pytest.mark.parametrize("who", ["viewer_user", "viewer_a"])
def test_viewers_cannot_act(who: str, request: pytest.FixtureRequest) -> None:
    user: User = request.getfixturevalue(who)

    response = logged_in(user).post("/processors/swift/action", {"action": "force_open"})

    assert response.status_code == 403
    assert ProcessorBreaker.objects.get(processor__name="swift").state == "closed"


# --- Health over the last hour --------------------------------------------------------


def test_the_board_draws_each_processors_last_hour(
    merchant_a: MerchantWithKey, viewer_user: User, owner_b: User
) -> None:
    # Given three approvals and one decline through swift (the only route) just now
    processors.processors_import(
        document={
            "rules": [
                {
                    "name": "swift-only",
                    "position": 1,
                    "targets": [{"processor": "swift", "weight": 1}],
                }
            ]
        }
    )
    for card in ("pm_card_visa", "pm_card_visa", "pm_card_mastercard", "pm_card_chargeDeclined"):
        intents.payment_intent_create(
            merchant=merchant_a.merchant,
            amount=1_000,
            currency="usd",
            payment_method=card,
            confirm=True,
        )
    publish_and_project()

    # When staff look, swift's row has its sparklines and the hour's figures
    board = logged_in(viewer_user).get("/processors/", HTTP_HX_REQUEST="true").content.decode()
    swift = board[board.index("<strong>swift</strong>") : board.index("<strong>ironbank</strong>")]
    assert swift.count('<svg class="sparkline"') == 2
    assert "75.0 %" in swift and "4 payments" in swift
    assert 'aria-label="swift: success rate per minute, last hour; 75.0 %"' in swift

    # and merchant B's owner, who sent nothing, sees none of A's traffic
    other = logged_in(owner_b).get("/processors/", HTTP_HX_REQUEST="true").content.decode()
    assert "sparkline" not in other and "No payments in the last hour." in other


# --- Settings --------------------------------------------------------------------------


def _settings(**changes: object) -> dict[str, object]:
    form = {
        "enabled": "on",
        "priority": 10,
        "latency_p50_ms": 80,
        "latency_p99_ms": 300,
        "timeout_ms": 2000,
        "timeout_rate_bp": 20,
        "unavailable_rate_bp": 30,
        "soft_decline_rate_bp": 150,
        "fee_percent_bp": 190,
        "fee_fixed": 20,
        **changes,
    }
    return {f"swift-{name}": value for name, value in form.items() if value is not None}


def test_an_operator_edits_a_processors_settings(operator_user: User) -> None:
    # When an operator makes swift slower and disables it
    response = logged_in(operator_user).post(
        "/processors/swift/settings",
        _settings(latency_p50_ms=400, latency_p99_ms=900, enabled=None, fee_fixed=25),
        HTTP_HX_REQUEST="true",
    )

    # Then it is saved, with an event saying who changed what
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<section id="processor-settings"')
    assert "Saved swift." in response.content.decode()
    swift = Processor.objects.get(name="swift")
    assert (swift.latency_p50_ms, swift.latency_p99_ms, swift.enabled) == (400, 900, False)
    assert swift.fees["default"] == {"percent_bp": 190, "fixed": 25}
    event = ProcessorEvent.objects.get(type="paylab.processor.updated")
    assert event.data["actor"] == operator_user.email
    assert event.data["changes"]["latency_p50_ms"] == 400
    assert "latency_p50_ms 80 → 400" in event.reason


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"latency_p50_ms": 500, "latency_p99_ms": 100}, "latency_p99_ms", "at least the p50"),
        ({"timeout_rate_bp": 10_001}, "timeout_rate_bp", "less than or equal to 10000"),
        ({"priority": "soon"}, "priority", "whole number"),
    ],
)
def test_a_refused_setting_is_shown_beside_its_field_and_nothing_changes(
    operator_user: User, changes: dict[str, object], field: str, message: str
) -> None:
    response = logged_in(operator_user).post(
        "/processors/swift/settings", _settings(**changes), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 400
    body = response.content.decode()
    assert "not saved" in body and message in body
    swift = Processor.objects.get(name="swift")
    assert (swift.latency_p50_ms, swift.timeout_rate_bp, swift.priority) == (80, 20, 10)
    assert not ProcessorEvent.objects.filter(type="paylab.processor.updated").exists()


@pytest.mark.parametrize("who", ["viewer_user", "viewer_a"])
def test_viewers_cannot_edit_settings_or_schedule_outages(
    who: str, request: pytest.FixtureRequest
) -> None:
    client = logged_in(request.getfixturevalue(who))

    assert client.post("/processors/swift/settings", _settings(priority=1)).status_code == 403
    assert client.post("/processors/outages", {"processor": "swift"}).status_code == 403
    assert Processor.objects.get(name="swift").priority == 10
    page = client.get("/processors/").content.decode()
    assert 'id="processor-settings"' not in page and 'id="outage-form"' not in page


# --- Scheduling an outage ---------------------------------------------------------------


def test_an_operator_schedules_a_brownout_for_later(operator_user: User) -> None:
    before = timezone.now()

    response = logged_in(operator_user).post(
        "/processors/outages",
        {
            "processor": "ironbank",
            "kind": "brownout",
            "starts_in": 10,
            "minutes": 15,
            "error_rate_bp": 2500,
            "error_code": "timeout",
            "latency_multiplier_pct": 400,
        },
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert "Scheduled: brownout of ironbank" in response.content.decode()
    outage = ProcessorOutage.objects.get(processor__name="ironbank")
    assert (outage.kind, outage.error_rate_bp, outage.error_code) == ("brownout", 2500, "timeout")
    assert outage.latency_multiplier_pct == 400
    starts = (outage.starts_at - before).total_seconds()
    assert 600 <= starts < 660
    assert (outage.ends_at - outage.starts_at).total_seconds() == 15 * 60


def test_a_malformed_outage_is_refused_beside_its_field(operator_user: User) -> None:
    response = logged_in(operator_user).post(
        "/processors/outages",
        {
            "processor": "nobody",
            "kind": "outage",
            "starts_in": 0,
            "minutes": 0,
            "error_code": "processor_unavailable",
            "latency_multiplier_pct": 100,
        },
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 400
    body = response.content.decode()
    assert "Select a valid choice" in body  # the processor
    assert "greater than or equal to 1" in body  # the minutes
    assert not ProcessorOutage.objects.exists()


def test_without_htmx_a_refused_setting_renders_the_page_with_the_error(
    operator_user: User,
) -> None:
    response = logged_in(operator_user).post(
        "/processors/swift/settings", _settings(latency_p50_ms=900, latency_p99_ms=100)
    )

    assert response.status_code == 400
    body = response.content.decode()
    assert "<html" in body and 'id="processor-board"' in body and "at least the p50" in body
