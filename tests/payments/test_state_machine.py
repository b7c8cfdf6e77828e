"""The PaymentIntent lifecycle table, over every (status, action) pair, without a database."""

from __future__ import annotations

import itertools

import pytest

from payments.state_machine import (
    TERMINAL,
    TRANSITIONS,
    Action,
    IllegalTransition,
    Status,
    allowed_actions,
    next_status,
)

EVERY_PAIR = list(itertools.product(Status, Action))
ALLOWED = [pair for pair in EVERY_PAIR if pair in TRANSITIONS]
REFUSED = [pair for pair in EVERY_PAIR if pair not in TRANSITIONS]


def _pair_id(pair: tuple[Status, Action]) -> str:
    return f"{pair[0].value}-{pair[1].value}"


@pytest.mark.parametrize("pair", ALLOWED, ids=_pair_id)
def test_allowed_pair_returns_the_tables_status(pair: tuple[Status, Action]) -> None:
    status, action = pair
    assert next_status(status, action) is TRANSITIONS[pair]
    # Plain strings, as read from a database row, mean the same.
    assert next_status(status.value, action.value) is TRANSITIONS[pair]


@pytest.mark.parametrize("pair", REFUSED, ids=_pair_id)
def test_every_other_pair_is_an_illegal_transition_naming_the_current_status(
    pair: tuple[Status, Action],
) -> None:
    status, action = pair
    with pytest.raises(IllegalTransition) as raised:
        next_status(status, action)
    assert raised.value.status is status
    assert raised.value.action is action
    assert f"status is {status.value}," in raised.value.message
    assert str(raised.value) == raised.value.message


@pytest.mark.parametrize("pair", REFUSED, ids=_pair_id)
def test_illegal_transition_message_names_a_status_it_could_be_done_from(
    pair: tuple[Status, Action],
) -> None:
    status, action = pair
    with pytest.raises(IllegalTransition) as raised:
        next_status(status, action)
    must = raised.value.message.split("but it must be ", 1)[1]
    sources = {s.value for (s, a) in TRANSITIONS if a == action}
    assert any(source in must for source in sources)
    assert status.value not in must


def test_the_table_covers_every_status_and_action() -> None:
    assert {s for (s, _) in TRANSITIONS} | set(TRANSITIONS.values()) == set(Status)
    assert {a for (_, a) in TRANSITIONS} == set(Action)


@pytest.mark.parametrize("status", list(Status))
def test_allowed_actions_lists_exactly_the_table_rows_of_a_status(status: Status) -> None:
    assert set(allowed_actions(status)) == {a for (s, a) in TRANSITIONS if s == status}


def test_unknown_status_or_action_is_a_value_error_not_a_transition() -> None:
    with pytest.raises(ValueError):
        next_status("authorized", Action.CAPTURE)
    with pytest.raises(ValueError):
        next_status(Status.REQUIRES_CAPTURE, "void")


# Spot checks against Stripe's PaymentIntent lifecycle
# (https://docs.stripe.com/payments/paymentintents/lifecycle).


@pytest.mark.parametrize("status", list(Status))
def test_capture_only_from_requires_capture(status: Status) -> None:
    if status == Status.REQUIRES_CAPTURE:
        assert next_status(status, Action.CAPTURE) == Status.SUCCEEDED
    else:
        with pytest.raises(IllegalTransition):
            next_status(status, Action.CAPTURE)


@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.PROCESSING, Status.CANCELED])
def test_cancel_is_refused_once_succeeded_processing_or_canceled(status: Status) -> None:
    with pytest.raises(IllegalTransition, match=f"status is {status.value}"):
        next_status(status, Action.CANCEL)


@pytest.mark.parametrize(
    "status",
    [
        Status.REQUIRES_PAYMENT_METHOD,
        Status.REQUIRES_CONFIRMATION,
        Status.REQUIRES_ACTION,
        Status.REQUIRES_CAPTURE,
    ],
)
def test_cancel_is_allowed_before_the_money_moves(status: Status) -> None:
    assert next_status(status, Action.CANCEL) == Status.CANCELED


@pytest.mark.parametrize("status", list(Status))
def test_refund_only_from_succeeded_and_keeps_it_succeeded(status: Status) -> None:
    if status == Status.SUCCEEDED:
        assert next_status(status, Action.REFUND) == Status.SUCCEEDED
    else:
        with pytest.raises(IllegalTransition):
            next_status(status, Action.REFUND)


@pytest.mark.parametrize("action", list(Action))
def test_canceled_is_terminal(action: Action) -> None:
    assert Status.CANCELED in TERMINAL
    with pytest.raises(IllegalTransition, match="status is canceled"):
        next_status(Status.CANCELED, action)


def test_a_decline_returns_to_requires_payment_method_for_a_retry_on_the_same_intent() -> None:
    for status in (Status.REQUIRES_CONFIRMATION, Status.REQUIRES_ACTION, Status.PROCESSING):
        assert next_status(status, Action.FAIL) == Status.REQUIRES_PAYMENT_METHOD


def test_only_requires_capture_expires_into_canceled() -> None:
    expiring = [s for s in Status if (s, Action.EXPIRE) in TRANSITIONS]
    assert expiring == [Status.REQUIRES_CAPTURE]
    assert next_status(Status.REQUIRES_CAPTURE, Action.EXPIRE) == Status.CANCELED


def test_succeeded_never_goes_back() -> None:
    reachable = {TRANSITIONS[(Status.SUCCEEDED, a)] for a in allowed_actions(Status.SUCCEEDED)}
    assert reachable == {Status.SUCCEEDED}
