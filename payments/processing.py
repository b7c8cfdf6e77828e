"""The seam between the payments domain and "the processor".

Services ask three questions here — may this authorisation go through, what
does capturing cost, how does this refund settle — and apply the answers
through the state machine. The card (its test behaviour) decides the
issuer's answer; the processor adds its own fees (and, in the processors
issue, latency, failures, routing and failover) without the state machine
knowing.

For now every payment goes to one built-in processor with no latency.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from payments import money

BUILTIN_PROCESSOR = "paylab"
# 2.9 % + 0.30 in the currency's major unit (scaled by its exponent).
BUILTIN_FEE_BASIS_POINTS = 290
BUILTIN_FEE_FIXED_MAJOR_HUNDREDTHS = 30
# Dispute fee: 15.00 in the currency's major unit.
DISPUTE_FEE_MAJOR_HUNDREDTHS = 1500


@dataclass(frozen=True)
class AuthorizationRequest:
    merchant_id: int
    payment_intent_id: str
    amount: int
    currency: str
    method_type: str
    brand: str
    bin: str
    behaviour: dict[str, Any]
    three_ds_completed: bool = False


@dataclass(frozen=True)
class AuthorizationOutcome:
    result: Literal["approved", "declined", "requires_action", "processing"]
    processor: str = BUILTIN_PROCESSOR
    decline_code: str | None = None
    error_code: str | None = None
    message: str | None = None
    network_status: str = "approved_by_network"
    outcome_type: str = "authorized"
    risk_level: str = "normal"
    authorization_code: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def stripe_outcome(self) -> dict[str, Any]:
        """Stripe's `charge.outcome`, with PayLab's attempts under `paylab`."""
        approved = self.result == "approved"
        return {
            "network_status": self.network_status,
            "reason": None if approved else self.decline_code,
            "risk_level": self.risk_level,
            "seller_message": "Payment complete."
            if approved
            else (self.message or "The bank declined."),
            "type": self.outcome_type,
            "paylab": {"processor": self.processor, "attempts": self.attempts},
        }


def scaled(currency: str, hundredths_of_major: int) -> int:
    """An amount given in hundredths of a major unit, in the currency's minor units."""
    exp = money.exponent(currency)
    return hundredths_of_major * 10**exp // 100


def authorize(request: AuthorizationRequest) -> AuthorizationOutcome:
    """The issuer's answer for this payment, as the test card dictates."""
    behaviour = request.behaviour
    three_ds = behaviour.get("three_ds")
    if three_ds in {"required", "required_then_decline"} and not request.three_ds_completed:
        return AuthorizationOutcome(result="requires_action")
    attempt = {"processor": BUILTIN_PROCESSOR, "latency_ms": 0}
    if behaviour.get("blocked"):
        return AuthorizationOutcome(
            result="declined",
            decline_code="fraudulent",
            error_code="card_declined",
            message="Your card was declined.",
            network_status="not_sent_to_network",
            outcome_type="blocked",
            risk_level="highest",
            attempts=[{**attempt, "result": "blocked", "code": "fraudulent"}],
        )
    decline_code = behaviour.get("decline_code")
    if behaviour.get("error_code"):
        return AuthorizationOutcome(
            result="declined",
            decline_code=decline_code,
            error_code=behaviour.get("error_code") or "card_declined",
            message=behaviour.get("message") or "Your card was declined.",
            network_status="declined_by_network",
            outcome_type="issuer_declined",
            risk_level=behaviour.get("risk_level") or "normal",
            attempts=[{**attempt, "result": "declined", "code": decline_code}],
        )
    return AuthorizationOutcome(
        result="approved",
        risk_level=behaviour.get("risk_level") or "normal",
        authorization_code=f"{secrets.randbelow(1_000_000):06d}",
        attempts=[{**attempt, "result": "approved", "code": None}],
    )


def capture_fee(*, processor: str, amount: int, currency: str) -> int:
    """The processing fee on a captured amount, never more than the amount."""
    fee = money.percent_fee(amount, BUILTIN_FEE_BASIS_POINTS) + scaled(
        currency, BUILTIN_FEE_FIXED_MAJOR_HUNDREDTHS
    )
    return min(fee, amount)


def dispute_fee(*, currency: str) -> int:
    return scaled(currency, DISPUTE_FEE_MAJOR_HUNDREDTHS)


def refund_settles_later(behaviour: dict[str, Any]) -> bool:
    """The refund-fails card: the refund is accepted, then fails."""
    return bool(behaviour.get("refund_fails"))
