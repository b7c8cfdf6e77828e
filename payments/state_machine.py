"""The PaymentIntent lifecycle as a table (DESIGN rule 2; STYLE 2).

Statuses follow Stripe's PaymentIntent. Every status change anywhere in
PayLab asks `next_status`; an (status, action) pair absent from the table is
an `IllegalTransition`, which the API renders as a 400
`payment_intent_unexpected_state`. No ORM here: the table is tested over
every pair without a database.
"""

from __future__ import annotations

from django.db import models


class Status(models.TextChoices):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


class Action(models.TextChoices):
    UPDATE = "update"  # change amount, currency, metadata, customer… before confirmation
    ATTACH_METHOD = "attach_method"  # a payment method arrives without confirming
    REQUIRE_ACTION = "require_action"  # confirmation needs 3-D Secure
    BEGIN_PROCESSING = "begin_processing"  # asynchronous method, or a processor in flight
    AUTHORIZE = "authorize"  # issuer approved, manual capture
    SUCCEED = "succeed"  # issuer approved, captured at once
    FAIL = "fail"  # declined or authentication failed: retry on the same intent
    CAPTURE = "capture"
    CANCEL = "cancel"
    EXPIRE = "expire"  # an authorisation not captured within its lifetime
    REFUND = "refund"
    DISPUTE = "dispute"


S, A = Status, Action
_CONFIRMABLE = (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION)
_IN_FLIGHT = (*_CONFIRMABLE, S.REQUIRES_ACTION, S.PROCESSING)

TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (S.REQUIRES_PAYMENT_METHOD, A.UPDATE): S.REQUIRES_PAYMENT_METHOD,
    (S.REQUIRES_CONFIRMATION, A.UPDATE): S.REQUIRES_CONFIRMATION,
    (S.REQUIRES_PAYMENT_METHOD, A.ATTACH_METHOD): S.REQUIRES_CONFIRMATION,
    (S.REQUIRES_CONFIRMATION, A.ATTACH_METHOD): S.REQUIRES_CONFIRMATION,
    **{(s, A.REQUIRE_ACTION): S.REQUIRES_ACTION for s in _CONFIRMABLE},
    **{(s, A.BEGIN_PROCESSING): S.PROCESSING for s in (*_CONFIRMABLE, S.REQUIRES_ACTION)},
    **{(s, A.AUTHORIZE): S.REQUIRES_CAPTURE for s in _IN_FLIGHT},
    **{(s, A.SUCCEED): S.SUCCEEDED for s in _IN_FLIGHT},
    **{(s, A.FAIL): S.REQUIRES_PAYMENT_METHOD for s in _IN_FLIGHT},
    (S.REQUIRES_CAPTURE, A.CAPTURE): S.SUCCEEDED,
    **{(s, A.CANCEL): S.CANCELED for s in (*_CONFIRMABLE, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE)},
    (S.REQUIRES_CAPTURE, A.EXPIRE): S.CANCELED,
    (S.SUCCEEDED, A.REFUND): S.SUCCEEDED,
    (S.SUCCEEDED, A.DISPUTE): S.SUCCEEDED,
}

# What each action is called in messages ("…must be requires_capture to capture it").
_VERBS = {
    A.UPDATE: "update it",
    A.ATTACH_METHOD: "attach a payment method to it",
    A.REQUIRE_ACTION: "confirm it",
    A.BEGIN_PROCESSING: "confirm it",
    A.AUTHORIZE: "confirm it",
    A.SUCCEED: "confirm it",
    A.FAIL: "confirm it",
    A.CAPTURE: "capture it",
    A.CANCEL: "cancel it",
    A.EXPIRE: "expire its authorization",
    A.REFUND: "refund it",
    A.DISPUTE: "dispute it",
}


class IllegalTransition(Exception):
    def __init__(self, status: Status | str, action: Action | str) -> None:
        self.status = Status(status)
        self.action = Action(action)
        allowed = sorted({s.value for (s, a) in TRANSITIONS if a == self.action})
        must = allowed[0] if len(allowed) == 1 else "one of " + ", ".join(allowed)
        self.message = (
            f"This PaymentIntent's status is {self.status.value}, but it must be {must} "
            f"to {_VERBS[self.action]}."
        )
        super().__init__(self.message)


def next_status(status: Status | str, action: Action | str) -> Status:
    """The status after `action`, or IllegalTransition."""
    try:
        return TRANSITIONS[(Status(status), Action(action))]
    except KeyError:
        raise IllegalTransition(status, action) from None


def allowed_actions(status: Status | str) -> list[Action]:
    return [a for (s, a) in TRANSITIONS if s == Status(status)]


TERMINAL = frozenset({S.CANCELED})
