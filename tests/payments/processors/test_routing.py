"""Routing: rule order, conditions, weighted split, skipping."""

import random
from collections import Counter

import pytest

from payments.processors.routing import PaymentFacts, ProcessorInfo, Rule, route

PROCESSORS = {
    "swift": ProcessorInfo("swift", priority=10, currencies=("usd", "eur")),
    "iron": ProcessorInfo("iron", priority=20),
    "monsoon": ProcessorInfo(
        "monsoon", priority=30, methods=("card", "upi"), currencies=("inr",), max_amount=500_000
    ),
}
USD = PaymentFacts(merchant_id=1, amount=2000, currency="usd", method="card", bin="424242")


def test_the_first_matching_rule_wins():
    rules = [
        Rule("amex", targets=(("iron", 1),), bin_prefixes=("34", "37")),
        Rule("usd", targets=(("swift", 1), ("iron", 0))),
        Rule("fallback", targets=(("iron", 1),)),
    ]
    decision = route(
        USD, rules=rules, processors=PROCESSORS, open_breakers=set(), rng=random.Random(1)
    )
    assert decision.rule == "usd"
    assert decision.candidates == ["swift", "iron"]


@pytest.mark.parametrize(
    ("facts", "expected_rule"),
    [
        (PaymentFacts(1, 2000, "usd", "card", "371449"), "amex"),
        (PaymentFacts(1, 200_000, "usd", "card", "424242"), "big"),
        (PaymentFacts(1, 2000, "inr", "upi"), "upi"),
        (PaymentFacts(7, 2000, "eur", "card", "555555"), "merchant 7"),
        (PaymentFacts(1, 2000, "eur", "card", "555555"), None),
    ],
)
def test_each_condition_selects_its_rule(facts, expected_rule):
    rules = [
        Rule("amex", targets=(("iron", 1),), bin_prefixes=("34", "37")),
        Rule("big", targets=(("iron", 1),), min_amount=100_000),
        Rule("upi", targets=(("monsoon", 1),), methods=("upi",)),
        Rule("merchant 7", targets=(("swift", 1),), merchant_ids=(7,)),
    ]
    decision = route(
        facts, rules=rules, processors=PROCESSORS, open_breakers=set(), rng=random.Random(1)
    )
    assert decision.rule == expected_rule


def test_without_a_rule_every_processor_is_a_candidate_by_priority():
    decision = route(
        USD, rules=[], processors=PROCESSORS, open_breakers=set(), rng=random.Random(1)
    )
    assert decision.rule is None
    assert decision.candidates == ["swift", "iron"]
    assert decision.skipped == [("monsoon", "does not support currency usd")]


def test_volume_split_is_within_five_percent_over_ten_thousand_seeded_draws():
    rules = [Rule("ab", targets=(("swift", 70), ("iron", 30)))]
    rng = random.Random(42)
    firsts = Counter(
        route(USD, rules=rules, processors=PROCESSORS, open_breakers=set(), rng=rng).candidates[0]
        for _ in range(10_000)
    )
    assert abs(firsts["swift"] / 10_000 - 0.70) <= 0.05
    assert abs(firsts["iron"] / 10_000 - 0.30) <= 0.05


def test_an_open_breaker_is_skipped_with_its_reason():
    rules = [Rule("usd", targets=(("swift", 1), ("iron", 1)))]
    decision = route(
        USD, rules=rules, processors=PROCESSORS, open_breakers={"swift"}, rng=random.Random(3)
    )
    assert decision.candidates == ["iron"]
    assert ("swift", "circuit breaker open") in decision.skipped


def test_limits_disabled_and_unknown_processors_are_skipped():
    processors = {**PROCESSORS, "off": ProcessorInfo("off", enabled=False)}
    rules = [Rule("all", targets=(("off", 1), ("ghost", 1), ("monsoon", 1), ("iron", 1)))]
    facts = PaymentFacts(1, 900_000, "inr", "card")
    decision = route(
        facts, rules=rules, processors=processors, open_breakers=set(), rng=random.Random(5)
    )
    assert decision.candidates == ["iron"]
    reasons = dict(decision.skipped)
    assert reasons["off"] == "disabled"
    assert reasons["ghost"] == "unknown processor"
    assert reasons["monsoon"].startswith("amount above")


def test_a_forced_processor_bypasses_the_rules():
    decision = route(
        USD,
        rules=[Rule("x", targets=(("swift", 1),))],
        processors=PROCESSORS,
        open_breakers=set(),
        rng=random.Random(1),
        forced="iron",
    )
    assert decision.candidates == ["iron"]
