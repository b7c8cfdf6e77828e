"""The scenario library and the deterministic traffic plan (no ORM here).

A scenario is default parameters, a rate profile and a list of timed steps
(chaos: a processor outage, webhooks down…). `plan_operation(params, i)`
says everything about operation i — merchant, amount, currency, card,
capture method, customer, its follow-ups, whether it repeats an earlier
idempotency key — from a `random.Random` seeded by (seed, i) alone, so the
same scenario, parameters and seed give the same requests in the same
order, whichever worker or slice executes them. `Schedule` says when
operation i is due (seconds from the run's start): paced, not bursty.

docs/simulator.md describes each scenario for operators.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import Any

from payments import money

Params = dict[str, Any]

# --- Outcomes → test cards -------------------------------------------------------

# Success by brand (the brand mix applies to successful traffic).
BRAND_CARDS = {
    "visa": "pm_card_visa",
    "visa_debit": "pm_card_visa_debit",
    "mastercard": "pm_card_mastercard",
    "amex": "pm_card_amex",
    "discover": "pm_card_discover",
    "jcb": "pm_card_jcb",
    "unionpay": "pm_card_unionpay",
    "diners": "pm_card_diners",
}

# Every other outcome is a Stripe test card that produces it.
OUTCOME_CARDS = {
    "generic_decline": "pm_card_visa_chargeDeclined",
    "insufficient_funds": "pm_card_visa_chargeDeclinedInsufficientFunds",
    "lost_card": "pm_card_visa_chargeDeclinedLostCard",
    "stolen_card": "pm_card_visa_chargeDeclinedStolenCard",
    "expired_card": "pm_card_chargeDeclinedExpiredCard",
    "incorrect_cvc": "pm_card_chargeDeclinedIncorrectCvc",
    "processing_error": "pm_card_chargeDeclinedProcessingError",
    "fraud_block": "pm_card_radarBlock",
    "risk_highest": "pm_card_riskLevelHighest",
    "three_ds": "pm_card_threeDSecure2Required",
    "three_ds_decline": "pm_card_threeDSecureRequiredChargeDeclined",
    "dispute": "pm_card_createDispute",
    "dispute_inquiry": "pm_card_createDisputeInquiry",
    "refund_fail": "pm_card_refundFail",
}
OUTCOMES = ("success", *OUTCOME_CARDS)

# UPI and wallets (payment_method_data). A UPI payment is in INR, goes
# `processing` and settles seconds later by its test VPA: every outcome but
# success becomes the failing VPA. A wallet has no test answers: it succeeds.
METHODS = ("card", "upi", "wallet")
UPI_SUCCESS_VPA = "success@paylab"
UPI_FAILURE_VPA = "failure@paylab"
UPI_SETTLE_SECONDS = 3.0

DEFAULTS: Params = {
    "rate": 20.0,  # payments per second (the base rate of a profile)
    "duration": 60.0,  # seconds; ignored when `count` is set
    "count": None,  # payments in total, instead of a duration
    "merchants": [],  # slugs; empty: the run's merchant only
    "currencies": {"usd": 70, "eur": 20, "gbp": 10},
    "methods": {"card": 94, "wallet": 4, "upi": 2},
    "brands": {"visa": 55, "mastercard": 30, "amex": 8, "discover": 4, "jcb": 3},
    "outcomes": {
        "success": 90.0,
        "generic_decline": 2.5,
        "insufficient_funds": 2.5,
        "incorrect_cvc": 0.5,
        "expired_card": 0.5,
        "processing_error": 0.5,
        "three_ds": 3.0,
        "dispute": 0.3,
        "fraud_block": 0.2,
    },
    "amount_median": 2500,  # in hundredths of the currency's major unit
    "amount_spread": 0.9,  # log-normal sigma
    "manual_capture_share": 0.1,
    "void_share": 0.1,  # of manual authorisations: canceled instead of captured
    "capture_delay": [1.0, 5.0],  # seconds after authorisation
    "refund_probability": 0.05,
    "partial_refund_share": 0.3,
    "refund_delay": [2.0, 10.0],
    "three_ds_complete": 0.8,  # of challenges: completed; `three_ds_fail` fail; the rest abandoned
    "three_ds_fail": 0.05,
    "three_ds_delay": [0.5, 3.0],
    "dispute_close_probability": 0.5,
    "dispute_win_share": 0.4,
    "dispute_close_delay": [3.0, 10.0],
    "customer_pool": 50,  # customers created for the run; 0: payments without customers
    "customer_share": 0.6,  # payments that name a customer from the pool
    "duplicate_share": 0.0,  # repeats of an earlier request with its idempotency key
    "conflict_share": 0.0,  # the same key with other parameters (an idempotency_error)
    "slices": None,  # parallel slices; None: one per 250 payments/s
    "seed": None,
}

# Parameters an operator may set (the API and the form accept these names).
NUMBER_PARAMS = (
    "rate",
    "duration",
    "amount_spread",
    "manual_capture_share",
    "void_share",
    "refund_probability",
    "partial_refund_share",
    "three_ds_complete",
    "three_ds_fail",
    "dispute_close_probability",
    "dispute_win_share",
    "customer_share",
    "duplicate_share",
    "conflict_share",
)
INT_PARAMS = ("count", "customer_pool", "slices", "seed", "amount_median")
MIX_PARAMS = ("currencies", "methods", "brands", "outcomes")
RANGE_PARAMS = ("capture_delay", "refund_delay", "three_ds_delay", "dispute_close_delay")
MAX_RATE = 5000.0
MAX_DURATION = 24 * 3600.0
MAX_SLICES = 32


@dataclass(frozen=True)
class Step:
    """A timed scenario action, applied once by slice 0 (see simulator.chaos)."""

    at: float  # seconds from the start
    action: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """While `start <= t < end`, traffic takes `outcomes` (a mix) from `share` of payments
    (optionally only those of `brand`)."""

    start: float
    end: float
    share: float
    outcomes: dict[str, float]
    brand: str | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    description: str
    defaults: Params = field(default_factory=dict)

    def params(self, overrides: Params | None = None) -> Params:
        merged = {**DEFAULTS, **self.defaults}
        for key, value in (overrides or {}).items():
            if value is not None:
                merged[key] = value
        return merged

    def segments(self, params: Params) -> list[tuple[float, float]]:
        """The rate profile: (seconds, payments/s) pieces."""
        return [(total_duration(params), float(params["rate"]))]

    def steps(self, params: Params) -> list[Step]:
        return []

    def windows(self, params: Params) -> list[Window]:
        return []


def total_duration(params: Params) -> float:
    if params.get("count"):
        return float(params["count"]) / float(params["rate"])
    return float(params["duration"])


class Peak(Scenario):
    def segments(self, params: Params) -> list[tuple[float, float]]:
        # base 20 % · ramp up x1 → x factor in 5 steps over 20 % · hold 20 % ·
        # ramp down over 20 % · base 20 %.
        d = total_duration(params)
        base = float(params["rate"])
        factor = float(params.get("peak_factor", 10))
        fifth = d / 5
        up = [(fifth / 5, base * (1 + (factor - 1) * (k + 1) / 5)) for k in range(5)]
        down = [(fifth / 5, base * (1 + (factor - 1) * (4 - k) / 5)) for k in range(5)]
        return [(fifth, base), *up, (fifth, base * factor), *down, (fifth, base)]


def _window(params: Params, start_key: str, length_key: str) -> tuple[float, float]:
    d = total_duration(params)
    start = params.get(start_key)
    length = params.get(length_key)
    start = d * 0.3 if start is None else float(start)
    length = d * 0.3 if length is None else float(length)
    return start, start + length


class DeclineStorm(Scenario):
    def windows(self, params: Params) -> list[Window]:
        start, end = _window(params, "storm_at", "storm_seconds")
        return [
            Window(
                start,
                end,
                share=float(params.get("storm_share", 0.9)),
                outcomes={"generic_decline": 50, "insufficient_funds": 20, "processing_error": 30},
                brand=str(params.get("storm_brand", "visa")),
            )
        ]


class ProcessorOutage(Scenario):
    def steps(self, params: Params) -> list[Step]:
        start, end = _window(params, "outage_at", "outage_seconds")
        processor = params.get("processor") or None
        return [
            Step(start, "processor_outage", {"processor": processor, "seconds": end - start}),
            Step(end, "processor_restore", {"processor": processor}),
        ]

    def windows(self, params: Params) -> list[Window]:
        # Without a processor outage service (see simulator.chaos) the
        # outage shows as processing errors: the same effect on payments.
        if params.get("_native_processor_chaos"):
            return []
        start, end = _window(params, "outage_at", "outage_seconds")
        return [Window(start, end, share=1.0, outcomes={"processing_error": 100})]


class Brownout(Scenario):
    def steps(self, params: Params) -> list[Step]:
        start, end = _window(params, "brownout_at", "brownout_seconds")
        processor = params.get("processor") or None
        factor = int(params.get("latency_factor", 10))
        return [
            Step(
                start,
                "processor_slow",
                {"processor": processor, "factor": factor, "seconds": end - start},
            ),
            Step(end, "processor_restore", {"processor": processor}),
        ]

    def windows(self, params: Params) -> list[Window]:
        if params.get("_native_processor_chaos"):
            return []
        start, end = _window(params, "brownout_at", "brownout_seconds")
        return [Window(start, end, share=0.1, outcomes={"processing_error": 100})]


class WebhookOutage(Scenario):
    def steps(self, params: Params) -> list[Step]:
        start, end = _window(params, "down_at", "down_seconds")
        return [
            Step(0.0, "webhook_sink_ensure", {}),
            Step(start, "webhooks_down", {}),
            Step(end, "webhooks_up", {}),
        ]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "steady",
            "Steady mixed traffic",
            "A constant rate of everyday traffic: mostly approvals across brands and "
            "currencies, a few declines, some 3-D Secure, manual captures, later refunds, "
            "the odd dispute.",
        ),
        Peak(
            "peak",
            "Peak (x10 ramp)",
            "The base rate for a fifth of the run, a five-step ramp to ten times it, a "
            "plateau, a ramp back down, and the base rate again (`peak_factor`).",
        ),
        DeclineStorm(
            "decline_storm",
            "Decline storm",
            "One issuer (the `storm_brand` BINs, visa by default) starts failing: from "
            "`storm_at` for `storm_seconds` (default: the middle third) 90 % of its payments "
            "are declined — generic declines, insufficient funds and processing errors.",
        ),
        ProcessorOutage(
            "processor_outage",
            "Processor outage",
            "The processor goes down at `outage_at` seconds for `outage_seconds`. Uses "
            "the processors' outage service when payments has one; otherwise every payment "
            "in the window fails with a processing error (see docs/simulator.md).",
        ),
        Brownout(
            "brownout",
            "Brownout (slow processor)",
            "The processor's latency multiplies by `latency_factor` from `brownout_at` for "
            "`brownout_seconds`, and 10 % of its payments fail with processing errors.",
        ),
        Scenario(
            "three_ds_eu",
            "3-D Secure heavy EU traffic",
            "European currencies and a majority of payments challenged by 3-D Secure: "
            "most completed, some failed, some abandoned.",
            defaults={
                "currencies": {"eur": 60, "gbp": 20, "chf": 8, "sek": 6, "pln": 6},
                "brands": {"visa": 50, "mastercard": 45, "amex": 5},
                "outcomes": {
                    "success": 30,
                    "three_ds": 55,
                    "three_ds_decline": 5,
                    "generic_decline": 5,
                    "insufficient_funds": 5,
                },
                "three_ds_complete": 0.75,
                "three_ds_fail": 0.1,
            },
        ),
        Scenario(
            "refund_wave",
            "Refund wave",
            "Half of the captured payments are refunded soon after, a third of them in "
            "part; a few refunds fail later (the refund-fails card).",
            defaults={
                "outcomes": {"success": 92, "refund_fail": 5, "generic_decline": 3},
                "refund_probability": 0.5,
                "partial_refund_share": 0.35,
                "refund_delay": [1.0, 5.0],
            },
        ),
        WebhookOutage(
            "webhook_outage",
            "Webhook endpoint down, then back",
            "Creates (once per merchant) a webhook endpoint pointing at PayLab's own "
            "simulator sink, which answers 503 from `down_at` for `down_seconds` and 200 "
            "otherwise: deliveries fail, retry with backoff, then get through.",
        ),
        Scenario(
            "duplicate_storm",
            "Duplicate-request storm",
            "A third of the requests are retries of an earlier one with its "
            "`Idempotency-Key` (replayed, never a second payment), and 5 % reuse a key with "
            "other parameters (an `idempotency_error`).",
            defaults={"duplicate_share": 0.3, "conflict_share": 0.05},
        ),
        Scenario(
            "fraud_dispute_wave",
            "Fraud and dispute wave",
            "Fraud blocks, highest-risk payments, disputes and inquiries well above normal; "
            "half of the disputes are closed (won or lost) during the run.",
            defaults={
                "outcomes": {
                    "success": 70,
                    "fraud_block": 10,
                    "risk_highest": 5,
                    "dispute": 10,
                    "dispute_inquiry": 3,
                    "stolen_card": 1,
                    "lost_card": 1,
                },
                "dispute_close_probability": 0.6,
            },
        ),
    ]
}


def get(name: str) -> Scenario:
    return SCENARIOS[name]


def slice_count(params: Params) -> int:
    if params.get("slices"):
        return max(1, min(int(params["slices"]), MAX_SLICES))
    peak = max(rate for _, rate in get_segments(params))
    return max(1, min(math.ceil(peak / 250), MAX_SLICES))


def get_segments(params: Params) -> list[tuple[float, float]]:
    return get(params["scenario"]).segments(params)


# --- When ---------------------------------------------------------------------


class Schedule:
    """Operation i is due at `offset(i)` seconds from the start: the time at
    which the rate profile's running count reaches i (piecewise constant)."""

    def __init__(self, segments: list[tuple[float, float]]) -> None:
        self.starts: list[float] = []
        self.counts: list[float] = []  # operations before each segment
        self.rates: list[float] = []
        t = 0.0
        n = 0.0
        for seconds, rate in segments:
            self.starts.append(t)
            self.counts.append(n)
            self.rates.append(rate)
            t += seconds
            n += seconds * rate
        self.total = round(n)
        self.duration = t

    def offset(self, index: int) -> float:
        k = max(0, bisect.bisect_right(self.counts, index) - 1)
        rate = self.rates[k]
        return self.starts[k] + (index - self.counts[k]) / rate if rate > 0 else self.starts[k]


# --- What -----------------------------------------------------------------------


@dataclass(frozen=True)
class FollowUpPlan:
    kind: str  # simulator.models.FollowUp.Kind values
    delay: float
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    index: int
    merchant_index: int
    amount: int
    currency: str
    # The `pm_card_*` test card; for UPI the test VPA, for a wallet its type.
    card: str
    outcome: str
    manual: bool
    customer_index: int | None
    follow_ups: tuple[FollowUpPlan, ...]
    # Repeat the request of this earlier index (same slice) with its key.
    duplicate_of: int | None = None
    # Reuse that key with other parameters: an idempotency_error.
    conflict: bool = False
    method: str = "card"


def _pick(rng: random.Random, mix: dict[str, float]) -> str:
    names = sorted(mix)  # sorted: the draw must not depend on dict order
    weights = [float(mix[name]) for name in names]
    return rng.choices(names, weights=weights)[0]


def _between(rng: random.Random, bounds: list[float]) -> float:
    low, high = float(bounds[0]), float(bounds[1])
    return low if high <= low else rng.uniform(low, high)


def rng_for(seed: int, index: int, salt: str = "") -> random.Random:
    # A str seed is hashed with SHA-512 by `random.seed` (version 2): the same
    # in every process, unlike hash() under PYTHONHASHSEED.
    return random.Random(f"paylab-sim:{seed}:{index}:{salt}")


def plan_operation(params: Params, index: int, *, at: float, slices: int) -> Operation:
    """Everything about operation `index`, due `at` seconds into the run."""
    rng = rng_for(int(params["seed"]), index)
    scenario = get(params["scenario"])
    merchants = max(1, int(params.get("_merchant_count", 1)))
    merchant_index = rng.randrange(merchants)
    currency = _pick(rng, params["currencies"])
    brand = _pick(rng, params["brands"])
    outcome = _pick(rng, params["outcomes"])
    # Scenario windows (storms, outages) override the outcome mix for a share.
    for window in scenario.windows(params):
        roll = rng.random()
        inside = window.start <= at < window.end
        if inside and (window.brand is None or brand == window.brand) and roll < window.share:
            outcome = _pick(rng, window.outcomes)
    card = (
        BRAND_CARDS.get(brand, "pm_card_visa") if outcome == "success" else OUTCOME_CARDS[outcome]
    )
    # Drawn from a stream of its own, so card-only traffic keeps the
    # sequence it had before methods were mixed in.
    method = _pick(
        rng_for(int(params["seed"]), index, "method"), params.get("methods") or {"card": 1}
    )
    if method == "upi":
        currency = "inr"
        outcome = "success" if outcome == "success" else "upi_failure"
        card = UPI_SUCCESS_VPA if outcome == "success" else UPI_FAILURE_VPA
    elif method == "wallet":
        outcome, card = "success", "paylab_wallet"
    median = _scaled(currency, int(params["amount_median"]))
    # The log-normal spread is drawn as a float, then applied as an integer
    # factor in millionths: the amount itself stays integer minor units.
    factor = round(math.exp(rng.gauss(0.0, float(params["amount_spread"]))) * 1_000_000)
    amount = median * factor // 1_000_000
    amount = max(money.minimum_amount(currency) * 2, min(amount, 9_999_999))
    # A UPI payment is never manually captured (it settles on its own).
    manual = rng.random() < float(params["manual_capture_share"]) and method != "upi"
    customer_index = None
    pool = int(params.get("customer_pool") or 0)
    if pool and rng.random() < float(params["customer_share"]):
        customer_index = rng.randrange(pool)
    follow_ups: list[FollowUpPlan] = []
    three_ds = outcome in ("three_ds", "three_ds_decline")
    if three_ds:
        roll = rng.random()
        delay = _between(rng, params["three_ds_delay"])
        if roll < float(params["three_ds_complete"]):
            follow_ups.append(FollowUpPlan("3ds_complete", delay))
        elif roll < float(params["three_ds_complete"]) + float(params["three_ds_fail"]):
            follow_ups.append(FollowUpPlan("3ds_fail", delay))
    refundable = outcome not in ("dispute", "dispute_inquiry")
    # Later steps wait for the earlier ones: capture after the challenge.
    capture_at = follow_ups[0].delay if follow_ups else 0.0
    if manual:
        capture_at += _between(rng, params["capture_delay"])
        void = rng.random() < float(params["void_share"])
        follow_ups.append(FollowUpPlan("cancel" if void else "capture", capture_at))
        refundable = refundable and not void
    if rng.random() < float(params["refund_probability"]) and refundable:
        partial = rng.random() < float(params["partial_refund_share"])
        fraction = rng.uniform(0.1, 0.9) if partial else 1.0
        delay = capture_at + _between(rng, params["refund_delay"])
        if method == "upi":
            delay += UPI_SETTLE_SECONDS  # refundable once settled
        follow_ups.append(FollowUpPlan("refund", delay, {"fraction": round(fraction, 4)}))
    if outcome == "dispute" and rng.random() < float(params["dispute_close_probability"]):
        won = rng.random() < float(params["dispute_win_share"])
        delay = capture_at + _between(rng, params["dispute_close_delay"])
        follow_ups.append(FollowUpPlan("dispute_win" if won else "dispute_lose", delay))
    duplicate_of = None
    conflict = False
    earlier = index - slices * (1 + rng.randrange(5))
    roll = rng.random()
    if earlier >= 0:
        if roll < float(params["duplicate_share"]):
            duplicate_of = earlier
        elif roll < float(params["duplicate_share"]) + float(params["conflict_share"]):
            duplicate_of, conflict = earlier, True
    return Operation(
        index=index,
        merchant_index=merchant_index,
        amount=amount,
        currency=currency,
        card=card,
        outcome=outcome,
        manual=manual,
        customer_index=customer_index,
        follow_ups=tuple(follow_ups),
        duplicate_of=duplicate_of,
        conflict=conflict,
        method=method,
    )


def _scaled(currency: str, hundredths_of_major: int) -> int:
    return max(1, hundredths_of_major * 10 ** money.exponent(currency) // 100)
