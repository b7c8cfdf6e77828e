"""Routing: which processors, in which order, for one payment.

Rules are ordered; the first whose conditions all hold (BIN prefix, amount
range, currency, method, merchant — an empty condition matches anything)
gives the candidate processors with weights. The weighted draw picks the
first candidate (A/B volume split); the others follow by weight as the
failover order. Candidates that cannot take the payment (disabled, method,
currency, amount limits) or whose breaker is open are skipped, each with its
reason, and the whole decision is returned for the payment's timeline.
With no matching rule, every enabled processor is a candidate by priority.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PaymentFacts:
    merchant_id: int
    amount: int
    currency: str
    method: str
    bin: str = ""


@dataclass(frozen=True)
class ProcessorInfo:
    name: str
    enabled: bool = True
    priority: int = 100
    methods: tuple[str, ...] = ("card",)
    currencies: tuple[str, ...] = ()  # empty: every currency
    min_amount: int = 0
    max_amount: int = 0  # 0: no limit

    def refuses(self, facts: PaymentFacts) -> str | None:
        if not self.enabled:
            return "disabled"
        if facts.method not in self.methods:
            return f"does not support method {facts.method}"
        if self.currencies and facts.currency not in self.currencies:
            return f"does not support currency {facts.currency}"
        if facts.amount < self.min_amount:
            return f"amount below its minimum {self.min_amount}"
        if self.max_amount and facts.amount > self.max_amount:
            return f"amount above its maximum {self.max_amount}"
        return None


@dataclass(frozen=True)
class Rule:
    name: str
    targets: tuple[tuple[str, int], ...]  # (processor name, weight)
    bin_prefixes: tuple[str, ...] = ()
    min_amount: int | None = None
    max_amount: int | None = None
    currencies: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    merchant_ids: tuple[int, ...] = ()

    def matches(self, facts: PaymentFacts) -> bool:
        return (
            (not self.bin_prefixes or any(facts.bin.startswith(p) for p in self.bin_prefixes))
            and (self.min_amount is None or facts.amount >= self.min_amount)
            and (self.max_amount is None or facts.amount <= self.max_amount)
            and (not self.currencies or facts.currency in self.currencies)
            and (not self.methods or facts.method in self.methods)
            and (not self.merchant_ids or facts.merchant_id in self.merchant_ids)
        )


@dataclass
class Decision:
    rule: str | None
    candidates: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "candidates": list(self.candidates),
            "skipped": [{"processor": name, "reason": reason} for name, reason in self.skipped],
        }


def _weighted_order(targets: Sequence[tuple[str, int]], rng: random.Random) -> list[str]:
    """The draw picks the first; the rest follow by weight (stable for ties)."""
    weighted = [(name, weight) for name, weight in targets if weight > 0]
    zero = [name for name, weight in targets if weight <= 0]
    if not weighted:
        return zero
    total = sum(weight for _, weight in weighted)
    point = rng.random() * total
    first = weighted[-1][0]
    for name, weight in weighted:
        point -= weight
        if point < 0:
            first = name
            break
    rest = sorted((t for t in weighted if t[0] != first), key=lambda t: -t[1])
    return [first, *[name for name, _ in rest], *zero]


def route(
    facts: PaymentFacts,
    *,
    rules: Iterable[Rule],
    processors: dict[str, ProcessorInfo],
    open_breakers: set[str],
    rng: random.Random,
    forced: str | None = None,
) -> Decision:
    """The ordered candidates for this payment and why others were skipped."""
    if forced is not None:
        rule_name, ordered = "PayLab-Simulate processor=", [forced]
    else:
        rule = next((r for r in rules if r.matches(facts)), None)
        if rule is not None:
            rule_name, ordered = rule.name, _weighted_order(rule.targets, rng)
        else:
            rule_name = None
            ordered = [
                p.name for p in sorted(processors.values(), key=lambda p: (p.priority, p.name))
            ]
    decision = Decision(rule=rule_name, candidates=[])
    for name in ordered:
        info = processors.get(name)
        reason = "unknown processor" if info is None else info.refuses(facts)
        if reason is None and name in open_breakers:
            reason = "circuit breaker open"
        if reason is None:
            decision.candidates.append(name)
        else:
            decision.skipped.append((name, reason))
    return decision
