"""The seam between the payments domain and "the processor".

Services ask here: which processors, in which order, and what does each
answer (`authorize`); what does capturing cost (`capture_fee`); how does
a refund settle. The card (its test behaviour) — or a `PayLab-Simulate`
directive — decides the issuer's answer; the processor adds its latency,
its own failures (timeouts, `processor_unavailable`, soft declines) and
scheduled outages on top. A retryable failure fails over to the next
candidate within a bounded budget; a decline is never retried.

`authorize` only *plans*: latencies are sampled and recorded on each
attempt, never slept here. The API awaits the total outside any
transaction (payments.api.deferred), then applies the outcome in a short
second transaction. Breaker failures are recorded when the outcome is
applied (`AuthorizationOutcome.breaker_results`).

Processor configuration is read from the database and cached in-process
for `PAYLAB_PROCESSOR_CACHE_SECONDS`, so a zero-latency confirmation adds no
round trip; a breaker change made in this process invalidates the cache at
once, other processes see it within the TTL.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings

from payments import money
from payments.directives import Directives
from payments.processors import breaker
from payments.processors.latency import sample_ms
from payments.processors.routing import PaymentFacts, ProcessorInfo, Rule, route

BUILTIN_PROCESSOR = "paylab"
# The fallback fee (a processor without a fee model): 2.9 % + 0.30.
BUILTIN_FEE_BASIS_POINTS = 290
BUILTIN_FEE_FIXED_MAJOR_HUNDREDTHS = 30
# Dispute fee: 15.00 in the currency's major unit.
DISPUTE_FEE_MAJOR_HUNDREDTHS = 1500
# Failover budget of one confirmation: attempts, and simulated time.
MAX_ATTEMPTS = 3
MAX_LATENCY_BUDGET_MS = 10_000
RETRYABLE = ("timeout", "processor_unavailable")

# Seeded by tests (`processing.rng.seed(…)`); everything random here draws from it.
rng = random.Random()

Result = Literal["approved", "declined", "requires_action", "processing"]


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
    result: Result
    processor: str = BUILTIN_PROCESSOR
    decline_code: str | None = None
    error_code: str | None = None
    message: str | None = None
    network_status: str = "approved_by_network"
    outcome_type: str = "authorized"
    risk_level: str = "normal"
    authorization_code: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    routing: dict[str, Any] | None = None
    simulate: str | None = None
    latency_ms: int = 0
    authorization_lifetime_hours: int = 168
    # (processor, success, was a half-open probe): applied to the breakers
    # in the transaction that applies the outcome.
    breaker_results: list[list[Any]] = field(default_factory=list)
    # The breaker state changes those results caused (filled in when applied).
    breaker_changes: list[dict[str, Any]] = field(default_factory=list)

    def stripe_outcome(self) -> dict[str, Any]:
        """Stripe's `charge.outcome`, with PayLab's routing and attempts under `paylab`."""
        approved = self.result in ("approved", "processing")
        paylab: dict[str, Any] = {
            "processor": self.processor,
            "routing": self.routing,
            "attempts": self.attempts,
            "latency_ms": self.latency_ms,
        }
        if self.simulate:
            paylab["simulate"] = self.simulate
        if self.breaker_changes:
            paylab["breaker_changes"] = self.breaker_changes
        return {
            "network_status": self.network_status,
            "reason": None if approved else self.decline_code,
            "risk_level": self.risk_level,
            "seller_message": (
                "Pending: the customer's bank has not answered yet."
                if self.result == "processing"
                else "Payment complete."
                if approved
                else (self.message or "The bank declined.")
            ),
            "type": self.outcome_type,
            "paylab": paylab,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthorizationOutcome:
        return cls(**data)


# --- The processor catalog, cached in-process ------------------------------------


@dataclass(frozen=True)
class Profile:
    info: ProcessorInfo
    latency_p50_ms: int
    latency_p99_ms: int
    soft_decline_rate_bp: int
    timeout_rate_bp: int
    unavailable_rate_bp: int
    timeout_ms: int
    fees: dict[str, Any]
    authorization_lifetime_hours: int
    breaker: breaker.BreakerConfig


@dataclass(frozen=True)
class Outage:
    processor: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    error_rate_bp: int
    error_code: str
    latency_multiplier_pct: int

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True)
class Catalog:
    profiles: dict[str, Profile]
    rules: tuple[Rule, ...]
    outages: tuple[Outage, ...]
    breakers: dict[str, breaker.BreakerState]

    def outage(self, name: str, now: datetime) -> Outage | None:
        return next((o for o in self.outages if o.processor == name and o.active(now)), None)


_cache: tuple[float, Catalog] | None = None
_cache_lock = threading.Lock()


def invalidate() -> None:
    """Forget the cached catalog (after a change made in this process)."""
    global _cache
    with _cache_lock:
        _cache = None


def catalog() -> Catalog:
    global _cache
    ttl = settings.PAYLAB_PROCESSOR_CACHE_SECONDS
    cached = _cache
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]
    loaded = _load()
    with _cache_lock:
        _cache = (time.monotonic(), loaded)
    return loaded


def _load() -> Catalog:
    from django.utils import timezone

    from payments.models import Processor, ProcessorBreaker, ProcessorOutage, RoutingRule

    profiles = {
        p.name: Profile(
            info=ProcessorInfo(
                name=p.name,
                enabled=p.enabled,
                priority=p.priority,
                methods=tuple(p.methods or ()),
                currencies=tuple(p.currencies or ()),
                min_amount=p.min_amount,
                max_amount=p.max_amount,
            ),
            latency_p50_ms=p.latency_p50_ms,
            latency_p99_ms=p.latency_p99_ms,
            soft_decline_rate_bp=p.soft_decline_rate_bp,
            timeout_rate_bp=p.timeout_rate_bp,
            unavailable_rate_bp=p.unavailable_rate_bp,
            timeout_ms=p.timeout_ms,
            fees=dict(p.fees or {}),
            authorization_lifetime_hours=p.authorization_lifetime_hours,
            breaker=breaker_config(p),
        )
        for p in Processor.objects.all()
    }
    rules = tuple(
        Rule(
            name=r.name,
            targets=tuple((str(t["processor"]), int(t.get("weight", 1))) for t in r.targets or []),
            bin_prefixes=tuple(r.bin_prefixes or ()),
            min_amount=r.min_amount,
            max_amount=r.max_amount,
            currencies=tuple(r.currencies or ()),
            methods=tuple(r.methods or ()),
            merchant_ids=tuple(m.pk for m in r.merchants.all()),
        )
        for r in RoutingRule.objects.filter(enabled=True).prefetch_related("merchants")
    )
    outages = tuple(
        Outage(
            processor=o.processor.name,
            kind=o.kind,
            starts_at=o.starts_at,
            ends_at=o.ends_at,
            error_rate_bp=o.error_rate_bp,
            error_code=o.error_code,
            latency_multiplier_pct=o.latency_multiplier_pct,
        )
        for o in ProcessorOutage.objects.filter(ends_at__gt=timezone.now()).select_related(
            "processor"
        )
    )
    breakers = {
        b.processor.name: breaker.BreakerState.from_dict(b.data)
        for b in ProcessorBreaker.objects.select_related("processor")
    }
    if not profiles:
        # No processors configured (or a test database flushed): the built-in
        # one, instant and infallible, with the fallback fee.
        profiles[BUILTIN_PROCESSOR] = Profile(
            info=ProcessorInfo(name=BUILTIN_PROCESSOR, methods=("card", "upi", "wallet")),
            latency_p50_ms=0,
            latency_p99_ms=0,
            soft_decline_rate_bp=0,
            timeout_rate_bp=0,
            unavailable_rate_bp=0,
            timeout_ms=0,
            fees={},
            authorization_lifetime_hours=168,
            breaker=breaker.BreakerConfig(),
        )
    return Catalog(profiles=profiles, rules=rules, outages=outages, breakers=breakers)


def breaker_config(processor: Any) -> breaker.BreakerConfig:
    return breaker.BreakerConfig(
        failure_threshold=processor.breaker_failure_threshold,
        failure_rate=processor.breaker_failure_rate_bp / 10_000,
        window_seconds=float(processor.breaker_window_seconds),
        open_seconds=float(processor.breaker_open_seconds),
        half_open_probes=processor.breaker_half_open_probes,
        close_after_successes=processor.breaker_close_after_successes,
    )


# --- Authorisation ---------------------------------------------------------------


def _issuer_answer(behaviour: dict[str, Any]) -> dict[str, Any]:
    if behaviour.get("blocked"):
        return {
            "result": "declined",
            "decline_code": "fraudulent",
            "error_code": "card_declined",
            "message": "Your card was declined.",
            "network_status": "not_sent_to_network",
            "outcome_type": "blocked",
            "risk_level": "highest",
            "attempt": "blocked",
        }
    if behaviour.get("error_code"):
        return {
            "result": "declined",
            "decline_code": behaviour.get("decline_code"),
            "error_code": behaviour.get("error_code") or "card_declined",
            "message": behaviour.get("message") or "Your card was declined.",
            "network_status": "declined_by_network",
            "outcome_type": "issuer_declined",
            "risk_level": behaviour.get("risk_level") or "normal",
            "attempt": "declined",
        }
    return {"result": "approved", "risk_level": behaviour.get("risk_level") or "normal"}


def _forced_decline(code: str) -> dict[str, Any]:
    return {
        "decline_code": code,
        "error_code": "expired_card"
        if code == "expired_card"
        else "incorrect_cvc"
        if code == "incorrect_cvc"
        else "processing_error"
        if code == "processing_error"
        else "card_declined",
        "message": "Your card was declined.",
    }


def authorize(
    request: AuthorizationRequest,
    *,
    directives: Directives | None = None,
    now: datetime | None = None,
) -> AuthorizationOutcome:
    """Route the payment and plan every processor attempt (no waiting here).

    Claims a half-open breaker's probe (a short locked update) when routing
    reaches one; failures are recorded on the breakers by the caller.
    """
    from django.utils import timezone

    from payments.services import processors as processor_services

    now = now or timezone.now()
    behaviour = dict(request.behaviour)
    simulate = directives.source if directives else None
    forced = bool(directives and (directives.decline or directives.processor_error))
    if directives and directives.decline:
        behaviour = {**_forced_decline(directives.decline)}
    three_ds = behaviour.get("three_ds")
    if (
        not forced
        and three_ds in {"required", "required_then_decline"}
        and not request.three_ds_completed
    ):
        return AuthorizationOutcome(result="requires_action", simulate=simulate)

    cat = catalog()
    seconds = now.timestamp()
    open_breakers = {
        name
        for name, state in cat.breakers.items()
        if name in cat.profiles
        and breaker.peek(state, seconds, cat.profiles[name].breaker) == breaker.OPEN
    }
    facts = PaymentFacts(
        merchant_id=request.merchant_id,
        amount=request.amount,
        currency=request.currency,
        method=request.method_type,
        bin=request.bin or "",
    )
    decision = route(
        facts,
        rules=cat.rules,
        processors={name: p.info for name, p in cat.profiles.items()},
        open_breakers=open_breakers,
        rng=rng,
        forced=directives.processor if directives else None,
    )
    attempts: list[dict[str, Any]] = []
    results: list[list[Any]] = []
    total = 0
    simulate_latency = settings.PAYLAB_PROCESSOR_LATENCY
    faults = settings.PAYLAB_PROCESSOR_FAULTS
    for name in list(decision.candidates):
        if len(attempts) >= MAX_ATTEMPTS or total >= MAX_LATENCY_BUDGET_MS:
            decision.skipped.append((name, "failover budget exhausted"))
            continue
        profile = cat.profiles[name]
        probe = False
        state = cat.breakers.get(name)
        if state is not None and breaker.peek(state, seconds, profile.breaker) == breaker.HALF_OPEN:
            if not processor_services.breaker_claim_probe(name=name, now=now):
                decision.skipped.append((name, "circuit breaker half-open, probe in flight"))
                continue
            probe = True
        first = not attempts
        outage = cat.outage(name, now)
        multiplier = outage.latency_multiplier_pct if outage else 100
        latency = (
            sample_ms(
                rng,
                p50_ms=profile.latency_p50_ms,
                p99_ms=profile.latency_p99_ms,
                multiplier_pct=multiplier,
            )
            if simulate_latency
            else 0
        )
        if first and directives and directives.latency_ms is not None:
            latency = directives.latency_ms
        failure, cause = None, None
        draw = rng.random() * 10_000
        if first and directives and directives.processor_error:
            failure, cause = directives.processor_error, "PayLab-Simulate"
        elif outage is not None and draw < outage.error_rate_bp:
            failure, cause = outage.error_code, f"scheduled {outage.kind}"
        elif faults and draw < profile.timeout_rate_bp:
            failure, cause = "timeout", "processor timeout rate"
        elif faults and draw < profile.timeout_rate_bp + profile.unavailable_rate_bp:
            failure, cause = "processor_unavailable", "processor error rate"
        if failure == "timeout" and simulate_latency:
            latency = max(latency, profile.timeout_ms)
        total += latency
        attempt: dict[str, Any] = {"processor": name, "latency_ms": latency}
        if probe:
            attempt["probe"] = True
        if failure is not None:
            attempts.append(
                {**attempt, "result": "error", "code": failure, "retryable": True, "cause": cause}
            )
            results.append([name, False, probe])
            continue
        results.append([name, True, probe])
        answer = _issuer_answer(behaviour)
        if (
            answer["result"] == "approved"
            and faults
            and not forced
            and rng.random() * 10_000 < profile.soft_decline_rate_bp
        ):
            answer = {
                "result": "declined",
                "decline_code": "try_again_later",
                "error_code": "card_declined",
                "message": "Your card was declined.",
                "network_status": "declined_by_network",
                "outcome_type": "issuer_declined",
                "risk_level": "normal",
                "attempt": "soft_declined",
            }
        common: dict[str, Any] = {
            "processor": name,
            "attempts": attempts,
            "routing": decision.as_dict(),
            "simulate": simulate,
            "latency_ms": total,
            "authorization_lifetime_hours": profile.authorization_lifetime_hours,
            "breaker_results": results,
        }
        if answer["result"] == "approved":
            attempts.append({**attempt, "result": "approved", "code": None})
            return AuthorizationOutcome(
                result="processing" if request.method_type == "upi" else "approved",
                risk_level=answer["risk_level"],
                authorization_code=f"{secrets.randbelow(1_000_000):06d}",
                **common,
            )
        attempts.append(
            {**attempt, "result": answer.pop("attempt"), "code": answer.get("decline_code")}
        )
        return AuthorizationOutcome(**answer, **common)
    message = (
        "No processor is available for this payment."
        if not attempts
        else "An error occurred while processing your card. Try again in a little bit."
    )
    return AuthorizationOutcome(
        result="declined",
        processor=attempts[-1]["processor"] if attempts else "",
        decline_code=None,
        error_code="processing_error",
        message=message,
        network_status="not_sent_to_network",
        outcome_type="invalid",
        attempts=attempts,
        routing=decision.as_dict(),
        simulate=simulate,
        latency_ms=total,
        breaker_results=results,
    )


def authorization_lifetime(outcome: AuthorizationOutcome) -> timedelta:
    return timedelta(hours=outcome.authorization_lifetime_hours)


# --- Fees --------------------------------------------------------------------------


def scaled(currency: str, hundredths_of_major: int) -> int:
    """An amount given in hundredths of a major unit, in the currency's minor units."""
    exp = money.exponent(currency)
    return hundredths_of_major * 10**exp // 100


def capture_fee(*, processor: str, amount: int, currency: str) -> int:
    """The processing fee on a captured amount per the processor's fee model,
    never more than the amount. A per-currency entry's `fixed` is in that
    currency's minor units; the `default` entry's in hundredths of a major
    unit. Unknown processors (the built-in one) charge 2.9 % + 0.30."""
    profile = catalog().profiles.get(processor)
    model = (profile.fees if profile else {}) or {}
    if currency in model:
        entry = model[currency]
        fee = money.percent_fee(amount, int(entry.get("percent_bp", 0))) + int(
            entry.get("fixed", 0)
        )
    else:
        entry = model.get("default") or {
            "percent_bp": BUILTIN_FEE_BASIS_POINTS,
            "fixed": BUILTIN_FEE_FIXED_MAJOR_HUNDREDTHS,
        }
        fee = money.percent_fee(amount, int(entry.get("percent_bp", 0))) + scaled(
            currency, int(entry.get("fixed", 0))
        )
    return min(fee, amount)


def dispute_fee(*, currency: str) -> int:
    return scaled(currency, DISPUTE_FEE_MAJOR_HUNDREDTHS)


def refund_settles_later(behaviour: dict[str, Any]) -> bool:
    """The refund-fails card: the refund is accepted, then fails."""
    return bool(behaviour.get("refund_fails"))


# --- UPI test VPAs -------------------------------------------------------------------

# A UPI payment settles `processing` → succeeded / failed after this many seconds.
UPI_VPAS: dict[str, tuple[str, int]] = {
    "success@paylab": ("succeeded", 3),
    "failure@paylab": ("failed", 3),
    "slow@paylab": ("succeeded", 30),
}


def upi_settlement(vpa: str) -> tuple[str, int]:
    """(final result, seconds until it settles) for a test VPA; any other VPA succeeds."""
    return UPI_VPAS.get((vpa or "").lower(), ("succeeded", 3))
