"""Payment-domain errors, in the PayLab (Stripe) vocabulary."""

from __future__ import annotations

from config.errors import InvalidRequestError, ResourceMissing
from payments.state_machine import IllegalTransition


def unexpected_state(error: IllegalTransition) -> InvalidRequestError:
    return InvalidRequestError(error.message, code="payment_intent_unexpected_state")


def missing(kind: str, object_id: str, param: str = "id") -> ResourceMissing:
    return ResourceMissing(f"No such {kind}: '{object_id}'", param=param)
