"""The Processors dashboard page: every role sees it, operators act."""

from __future__ import annotations

import pytest

from accounts.models import User
from payments.models import ProcessorBreaker, ProcessorOutage
from tests.conftest import logged_in

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
